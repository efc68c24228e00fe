"""NegativeSampler (exactness, distributions, re-drawing) and training_dataset."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import NegativeSampler, training_dataset


def _random_positives(num_users=40, num_items=30, seed=0):
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(num_users):  # test set-up only; sizes 1..29, last user has 29 of 30
        size = num_items - 1 if user == num_users - 1 else rng.integers(1, num_items)
        chosen = rng.choice(num_items, size=size, replace=False)
        users += [user] * size
        items += chosen.tolist()
    return np.array(users), np.array(items)


def _positive_sets(users, items):
    sets = {}
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        sets.setdefault(user, set()).add(item)
    return sets


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_never_returns_a_positive(distribution):
    users, items = _random_positives()
    sampler = NegativeSampler(users, items, 30, distribution, alpha=0.0, seed=1)
    batch = np.repeat(np.arange(40), 50)
    drawn = sampler.sample(tf.constant(batch), 7).numpy()
    assert drawn.shape == (2000, 7) and drawn.dtype == np.int64
    assert drawn.min() >= 0 and drawn.max() < 30
    positives = _positive_sets(users, items)
    for user, row in zip(batch.tolist(), drawn.tolist(), strict=True):
        assert not positives[user] & set(row)
    free = sorted(set(range(30)) - positives[39])
    assert set(drawn[batch == 39].ravel().tolist()) == set(free)  # the only negative left


def test_uniform_is_uniform_over_non_positives():
    sampler = NegativeSampler(np.zeros(5, int), np.arange(5), 10, seed=2)
    drawn = sampler.sample(tf.zeros([10_000], tf.int64), 5).numpy().ravel()
    frequency = np.bincount(drawn, minlength=10) / drawn.size
    np.testing.assert_allclose(frequency, [0] * 5 + [0.2] * 5, atol=0.01)


def test_popularity_follows_count_to_the_alpha():
    counts = np.array([400, 200, 100, 50, 25, 12, 6, 3])
    items = np.repeat(np.arange(8), counts)  # each user has exactly one positive
    users = np.arange(items.size)
    sampler = NegativeSampler(users, items, 8, "popularity", alpha=0.75, seed=3)
    np.testing.assert_allclose(sampler.probabilities, counts**0.75 / (counts**0.75).sum())
    drawn = sampler.sample(tf.zeros([20_000], tf.int64), 5).numpy().ravel()  # user 0 owns item 0
    expected = counts**0.75 * (np.arange(8) != 0)
    frequency = np.bincount(drawn, minlength=8) / drawn.size
    np.testing.assert_allclose(frequency, expected / expected.sum(), atol=0.01)


def test_popularity_exact_fallback_when_positives_hold_most_mass():
    # item 0 is hugely popular; user 1 owns items 0 and 1, so rejection almost always fails
    # and the exact fallback must draw items 2, 3, 4 with weights 1 : 8 : 27 (= count**0.75).
    items = np.concatenate([np.zeros(20_000, int), [1], np.repeat([2, 3, 4], [1, 16, 81])])
    users = np.concatenate([np.arange(20_000) + 2, [1], np.arange(98) + 30_000])
    users[0], items[0] = 1, 0
    sampler = NegativeSampler(users, items, 5, "popularity", alpha=0.75, seed=4)
    drawn = sampler.sample(tf.ones([10_000], tf.int64), 4).numpy().ravel()
    assert not np.isin(drawn, [0, 1]).any()
    frequency = np.bincount(drawn, minlength=5) / drawn.size
    np.testing.assert_allclose(frequency, [0, 0, 1 / 36, 8 / 36, 27 / 36], atol=0.015)


def test_redrawn_per_call_and_reproducible_with_a_seed():
    users, items = _random_positives()
    sampler = NegativeSampler(users, items, 30)
    batch = tf.range(40)
    assert not np.array_equal(sampler.sample(batch, 5), sampler.sample(batch, 5))
    seed = tf.constant([5, 6])
    np.testing.assert_array_equal(
        sampler.sample(batch, 5, seed=seed), sampler.sample(batch, 5, seed=seed)
    )
    again = NegativeSampler(users, items, 30, seed=9).sample(batch, 5)
    np.testing.assert_array_equal(again, NegativeSampler(users, items, 30, seed=9).sample(batch, 5))


def test_usable_inside_tf_data_map_in_graph_mode():
    sampler = NegativeSampler(np.array([0, 0, 1]), np.array([1, 2, 0]), 5, "popularity", 0.0)
    dataset = tf.data.Dataset.from_tensor_slices(np.array([0, 1, 0, 1])).batch(2)
    dataset = dataset.map(lambda users: sampler.sample(users, 50))
    first, second = list(dataset.as_numpy_iterator()), list(dataset.as_numpy_iterator())
    assert not np.array_equal(np.stack(first), np.stack(second))  # re-drawn each epoch
    for batch in first + second:
        assert not np.isin(batch[0], [1, 2]).any() and not np.isin(batch[1], [0]).any()


def test_users_without_positives_get_plain_draws():
    empty = np.zeros(0, np.int64)
    drawn = NegativeSampler(empty, empty, 4, seed=0).sample(tf.zeros([500], tf.int64), 2)
    assert sorted(set(drawn.numpy().ravel().tolist())) == [0, 1, 2, 3]
    sampler = NegativeSampler(np.array([0]), np.array([2]), 4, seed=0)
    beyond = sampler.sample(tf.constant([5] * 200), 2).numpy()  # user 5: no positives at all
    assert sorted(set(beyond.ravel().tolist())) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"user_index": [0, 0, 0], "movie_index": [0, 1, 2]}, "User 0 has every one of the 3"),
        ({"distribution": "zipf"}, "Unknown distribution.*'zipf'"),
        ({"alpha": -1.0}, "alpha must be finite and >= 0"),
        ({"movie_index": [0, 7]}, "Indices out of range.*num_items=3"),
        ({"movie_index": [0]}, "equal lengths"),
        ({"movie_index": [0.5, 1.0]}, "1-D integer array"),
        ({"num_items": 0}, "num_items must be >= 1"),
        ({"distribution": "popularity", "user_index": [0, 0, 1], "movie_index": [0, 1, 0]},
         "User 0 has every item of non-zero popularity"),
    ],
)  # fmt: skip
def test_bad_sampler_arguments(kwargs, pattern):
    arguments = {"user_index": [0, 1], "movie_index": [0, 1], "num_items": 3, **kwargs}
    arguments = {k: np.array(v) if isinstance(v, list) else v for k, v in arguments.items()}
    with pytest.raises(ValueError, match=pattern):
        NegativeSampler(**arguments)


@pytest.fixture
def positives():
    users, items = _random_positives(num_users=12, num_items=30, seed=5)
    n = users.size
    return {
        "user_index": users,
        "movie_index": items,
        "user_id": np.char.add("u", users.astype(str)),
        "movie_id": np.char.add("m", items.astype(str)),
        "row": np.arange(n),
        "history": np.stack([np.arange(n), -np.arange(n)], axis=1),
    }


def _epoch(dataset):
    batches = list(dataset.as_numpy_iterator())
    return batches, {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_training_dataset_epoch(positives):
    movie_ids = np.char.add("m", np.arange(30).astype(str))
    sampler = NegativeSampler(positives["user_index"], positives["movie_index"], 30)
    dataset = training_dataset(positives, movie_ids, sampler, num_negatives=3, batch_size=64)
    batches, rows = _epoch(dataset)
    n = positives["row"].size
    assert [len(b["label"]) for b in batches[:-1]] == [64] * (len(batches) - 1)
    assert rows["label"].size == 4 * n and rows["label"].dtype == np.float32
    assert rows["user_id"].dtype == object  # tf.string
    is_positive = rows["label"] == 1.0
    assert sorted(rows["row"][is_positive].tolist()) == list(range(n))
    np.testing.assert_array_equal(np.bincount(rows["row"][~is_positive]), [3] * n)
    source = rows["row"]
    for name in ("user_index", "history"):
        np.testing.assert_array_equal(rows[name], positives[name][source])
    np.testing.assert_array_equal(
        rows["movie_index"][is_positive], positives["movie_index"][source[is_positive]]
    )
    decoded = np.char.decode(rows["movie_id"].astype(bytes))
    np.testing.assert_array_equal(decoded, movie_ids[rows["movie_index"]])
    sets = _positive_sets(positives["user_index"], positives["movie_index"])
    negatives = zip(
        rows["user_index"][~is_positive], rows["movie_index"][~is_positive], strict=True
    )
    for user, item in negatives:
        assert item not in sets[user]
    assert not np.array_equal(rows["label"][: 4 * 5], np.tile([1.0, 0, 0, 0], 5))  # shuffled


def test_training_dataset_redraws_each_epoch_and_is_seeded(positives):
    movie_ids = np.arange(30).astype(str)
    sampler = NegativeSampler(positives["user_index"], positives["movie_index"], 30)
    make = lambda: training_dataset(positives, movie_ids, sampler, 2, 50, seed=11)  # noqa: E731
    first = make()
    _, epoch1 = _epoch(first)
    _, epoch2 = _epoch(first)
    assert not np.array_equal(epoch1["movie_index"], epoch2["movie_index"])
    _, replay = _epoch(make())
    np.testing.assert_array_equal(replay["movie_index"], epoch1["movie_index"])


def test_training_dataset_without_shuffle_keeps_groups(positives):
    movie_ids = np.arange(30).astype(str)
    sampler = NegativeSampler(positives["user_index"], positives["movie_index"], 30)
    _, rows = _epoch(training_dataset(positives, movie_ids, sampler, 2, 9, shuffle=False))
    n = positives["row"].size
    np.testing.assert_array_equal(rows["label"], np.tile([1.0, 0.0, 0.0], n))
    np.testing.assert_array_equal(rows["row"], np.repeat(np.arange(n), 3))


def test_training_dataset_bad_arguments(positives):
    movie_ids = np.arange(30).astype(str)
    sampler = NegativeSampler(positives["user_index"], positives["movie_index"], 30)
    with pytest.raises(ValueError, match="num_negatives must be an int >= 1"):
        training_dataset(positives, movie_ids, sampler, num_negatives=0)
    with pytest.raises(ValueError, match="movie_ids must list the sampler's 30 items"):
        training_dataset(positives, movie_ids[:5], sampler)
    with pytest.raises(ValueError, match="needs a 'user_index' column"):
        training_dataset({"movie_index": positives["movie_index"]}, movie_ids, sampler)
    with pytest.raises(ValueError, match="already has a 'label' column"):
        training_dataset(dict(positives, label=positives["row"]), movie_ids, sampler)
    with pytest.raises(ValueError, match=r"indices are out of range.*num_items=30"):
        training_dataset(
            dict(positives, movie_index=positives["movie_index"] + 30), movie_ids, sampler
        )
    with pytest.raises(ValueError, match="sampler must be a NegativeSampler"):
        training_dataset(positives, movie_ids, object())

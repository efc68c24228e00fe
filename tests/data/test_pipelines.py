"""pointwise_dataset (positives + fresh negatives) and positives_dataset (positives alone)."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import NegativeSampler, SeenItems, pointwise_dataset, positives_dataset

NUM_ITEMS = 30


@pytest.fixture(scope="module")
def positives():
    rng = np.random.default_rng(5)
    users, items = [], []
    for user in range(12):  # test set-up only: 1..29 distinct items per user
        size = rng.integers(1, NUM_ITEMS)
        users += [user] * size
        items += rng.choice(NUM_ITEMS, size=size, replace=False).tolist()
    users, items = np.array(users), np.array(items)
    n = users.size
    return {
        "user_index": users,
        "movie_index": items,
        "user_id": np.char.add("u", users.astype(str)),
        "row": np.arange(n),
        "history": np.stack([np.arange(n), -np.arange(n)], axis=1),
    }


@pytest.fixture(scope="module")
def sampler(positives):
    seen = SeenItems.from_pairs(positives["user_index"], positives["movie_index"], 12, NUM_ITEMS)
    return NegativeSampler(seen, seed=0)


def _epoch(dataset):
    batches = list(dataset.as_numpy_iterator())
    return batches, {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_pointwise_epoch(positives, sampler):
    movie_ids = np.char.add("m", np.arange(NUM_ITEMS).astype(str))
    with_ids = dict(positives, movie_id=movie_ids[positives["movie_index"]])
    dataset = pointwise_dataset(with_ids, sampler, 3, batch_size=64, movie_ids=movie_ids)
    batches, rows = _epoch(dataset)
    n = positives["row"].size
    assert [len(b["label"]) for b in batches[:-1]] == [64] * (len(batches) - 1)
    assert rows["label"].size == 4 * n and rows["label"].dtype == np.float32
    assert rows["user_id"].dtype == object  # tf.string
    assert rows["movie_index"].dtype == rows["user_index"].dtype == np.int64
    is_positive = rows["label"] == 1.0
    assert sorted(rows["row"][is_positive].tolist()) == list(range(n))
    np.testing.assert_array_equal(np.bincount(rows["row"][~is_positive]), [3] * n)
    source = rows["row"]
    for name in ("user_index", "history"):
        np.testing.assert_array_equal(rows[name], positives[name][source])
    np.testing.assert_array_equal(rows["user_id"].astype(str), positives["user_id"][source])
    np.testing.assert_array_equal(
        rows["movie_index"][is_positive], positives["movie_index"][source[is_positive]]
    )
    decoded = np.char.decode(rows["movie_id"].astype(bytes))
    np.testing.assert_array_equal(decoded, movie_ids[rows["movie_index"]])  # negatives' own ids
    negatives = ~is_positive
    assert not sampler.seen.contains(
        rows["user_index"][negatives], rows["movie_index"][negatives]
    ).any()
    assert not np.array_equal(rows["label"][: 4 * 5], np.tile([1.0, 0, 0, 0], 5))  # shuffled


def test_pointwise_without_movie_ids_carries_indices_only(positives, sampler):
    _, rows = _epoch(pointwise_dataset(positives, sampler, 2, batch_size=100, seed=1))
    assert "movie_id" not in rows
    assert set(rows) == {*positives, "label"}


def test_pointwise_redraws_each_epoch_and_is_seeded(positives, sampler):
    make = lambda: pointwise_dataset(positives, sampler, 2, 50, seed=11)  # noqa: E731
    first = make()
    _, epoch1 = _epoch(first)
    _, epoch2 = _epoch(first)
    assert not np.array_equal(epoch1["movie_index"], epoch2["movie_index"])
    _, replay = _epoch(make())
    np.testing.assert_array_equal(replay["movie_index"], epoch1["movie_index"])


def test_pointwise_without_shuffle_keeps_groups(positives, sampler):
    _, rows = _epoch(pointwise_dataset(positives, sampler, 2, 9, shuffle=False))
    n = positives["row"].size
    np.testing.assert_array_equal(rows["label"], np.tile([1.0, 0.0, 0.0], n))
    np.testing.assert_array_equal(rows["row"], np.repeat(np.arange(n), 3))
    np.testing.assert_array_equal(rows["movie_index"][::3], positives["movie_index"])


def test_pointwise_bad_arguments(positives, sampler):
    movie_ids = np.arange(NUM_ITEMS).astype(str)
    with pytest.raises(ValueError, match="num_negatives must be an int >= 1. Received"):
        pointwise_dataset(positives, sampler, num_negatives=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1. Received"):
        pointwise_dataset(positives, sampler, batch_size=0)
    with pytest.raises(ValueError, match=r"movie_ids must list the sampler's 30 items.*\(5,\)"):
        pointwise_dataset(positives, sampler, movie_ids=movie_ids[:5])
    with pytest.raises(ValueError, match="needs a 'user_index' column"):
        pointwise_dataset({"movie_index": positives["movie_index"]}, sampler)
    with pytest.raises(ValueError, match="already has a 'label' column"):
        pointwise_dataset(dict(positives, label=positives["row"]), sampler)
    with pytest.raises(ValueError, match=r"indices are out of range.*num_items=30"):
        pointwise_dataset(dict(positives, movie_index=positives["movie_index"] + 30), sampler)
    with pytest.raises(ValueError, match="equal-length columns"):
        pointwise_dataset(dict(positives, row=positives["row"][:3]), sampler)
    with pytest.raises(ValueError, match="sampler must be a NegativeSampler"):
        pointwise_dataset(positives, object())


def test_pointwise_refuses_item_columns_it_would_copy_onto_negatives(positives, sampler):
    # A negative row copies every column of its positive except movie_index (and movie_id when
    # the catalogue's ids are given): a positive's movie_id on its negatives leaks the label.
    with_ids = dict(positives, movie_id=np.char.add("m", positives["movie_index"].astype(str)))
    with pytest.raises(ValueError, match=r"'movie_id' column.*Received: movie_ids=None"):
        pointwise_dataset(with_ids, sampler)


def test_positives_epoch_every_row_once_reshuffled(positives):
    dataset = positives_dataset(positives, batch_size=32, seed=3)
    batches, first = _epoch(dataset)
    _, second = _epoch(dataset)
    n = positives["row"].size
    assert [len(b["row"]) for b in batches[:-1]] == [32] * (len(batches) - 1)
    assert "label" not in first
    assert first["user_index"].dtype == first["movie_index"].dtype == np.int64
    for rows in (first, second):
        assert sorted(rows["row"].tolist()) == list(range(n))
        np.testing.assert_array_equal(rows["movie_index"], positives["movie_index"][rows["row"]])
        np.testing.assert_array_equal(rows["history"], positives["history"][rows["row"]])
    assert not np.array_equal(first["row"], second["row"])  # a new order every epoch
    _, replay = _epoch(positives_dataset(positives, batch_size=32, seed=3))
    np.testing.assert_array_equal(replay["row"], first["row"])


def test_positives_bad_arguments(positives):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1. Received: batch_size=0"):
        positives_dataset(positives, batch_size=0)
    with pytest.raises(ValueError, match="needs a 'movie_index' column"):
        positives_dataset({"user_index": positives["user_index"]})

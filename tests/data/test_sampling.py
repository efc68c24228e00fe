"""NegativeSampler: in-graph training draws (`sample`) and distinct evaluation draws
(`sample_distinct`): validity, exactness of both distributions, reproducibility, errors."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import NegativeSampler, SeenItems
from tfrec.data._distinct_sampling import DistinctDraws


def _seen(users, items, num_items, num_users=None):
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    num_users = num_users or int(users.max(initial=-1)) + 1 or 1
    return SeenItems.from_pairs(users, items, num_users, num_items)


def _random_seen(num_users=40, num_items=30, seed=0):
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(num_users):  # test set-up only; sizes 1..29, last user has 29 of 30
        size = num_items - 1 if user == num_users - 1 else rng.integers(1, num_items)
        chosen = rng.choice(num_items, size=size, replace=False)
        users += [user] * size
        items += chosen.tolist()
    return _seen(users, items, num_items)


def _positive_sets(seen):
    rows = range(seen.num_users)
    return {u: set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist()) for u in rows}


# ---------------------------------------------------------------------- sample (in-graph)


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_sample_never_returns_a_positive(distribution):
    seen = _random_seen()
    sampler = NegativeSampler(seen, distribution, alpha=0.0, seed=1)
    batch = np.repeat(np.arange(40), 50)
    drawn = sampler.sample(tf.constant(batch), 7).numpy()
    assert drawn.shape == (2000, 7) and drawn.dtype == np.int64
    assert drawn.min() >= 0 and drawn.max() < 30
    positives = _positive_sets(seen)
    for user, row in zip(batch.tolist(), drawn.tolist(), strict=True):
        assert not positives[user] & set(row)
    free = sorted(set(range(30)) - positives[39])
    assert set(drawn[batch == 39].ravel().tolist()) == set(free)  # the only negative left


def test_sample_uniform_is_uniform_over_non_positives():
    sampler = NegativeSampler(_seen(np.zeros(5), np.arange(5), 10), seed=2)
    drawn = sampler.sample(tf.zeros([10_000], tf.int64), 5).numpy().ravel()
    frequency = np.bincount(drawn, minlength=10) / drawn.size
    np.testing.assert_allclose(frequency, [0] * 5 + [0.2] * 5, atol=0.01)


def test_sample_popularity_follows_count_to_the_alpha():
    counts = np.array([400, 200, 100, 50, 25, 12, 6, 3])
    items = np.repeat(np.arange(8), counts)  # each user has exactly one positive
    sampler = NegativeSampler(_seen(np.arange(items.size), items, 8), "popularity", 0.75, seed=3)
    np.testing.assert_allclose(sampler.probabilities, counts**0.75 / (counts**0.75).sum())
    drawn = sampler.sample(tf.zeros([20_000], tf.int64), 5).numpy().ravel()  # user 0 owns item 0
    expected = counts**0.75 * (np.arange(8) != 0)
    frequency = np.bincount(drawn, minlength=8) / drawn.size
    np.testing.assert_allclose(frequency, expected / expected.sum(), atol=0.01)


def test_sample_popularity_with_given_counts():
    seen = _seen([0], [0], 4, num_users=2)
    sampler = NegativeSampler(seen, "popularity", alpha=1.0, item_counts=[5.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(sampler.probabilities, [5 / 9, 0, 1 / 9, 3 / 9])
    drawn = sampler.sample(tf.zeros([8000], tf.int64), 2).numpy().ravel()  # user 0 owns item 0
    frequency = np.bincount(drawn, minlength=4) / drawn.size
    np.testing.assert_allclose(frequency, [0, 0, 0.25, 0.75], atol=0.015)  # count 0: never


def test_sample_popularity_exact_fallback_when_positives_hold_most_mass():
    # item 0 is hugely popular; user 1 owns items 0 and 1, so rejection almost always fails
    # and the exact fallback must draw items 2, 3, 4 with weights 1 : 8 : 27 (= count**0.75).
    items = np.concatenate([np.zeros(20_000, int), [1], np.repeat([2, 3, 4], [1, 16, 81])])
    users = np.concatenate([np.arange(20_000) + 2, [1], np.arange(98) + 30_000])
    users[0], items[0] = 1, 0
    sampler = NegativeSampler(_seen(users, items, 5), "popularity", alpha=0.75, seed=4)
    drawn = sampler.sample(tf.ones([10_000], tf.int64), 4).numpy().ravel()
    assert not np.isin(drawn, [0, 1]).any()
    frequency = np.bincount(drawn, minlength=5) / drawn.size
    np.testing.assert_allclose(frequency, [0, 0, 1 / 36, 8 / 36, 27 / 36], atol=0.015)


def test_sample_redrawn_per_call_and_reproducible_with_a_seed():
    seen = _random_seen()
    sampler = NegativeSampler(seen, seed=None)
    batch = tf.range(40)
    assert not np.array_equal(sampler.sample(batch, 5), sampler.sample(batch, 5))
    seed = tf.constant([5, 6])
    np.testing.assert_array_equal(
        sampler.sample(batch, 5, seed=seed), sampler.sample(batch, 5, seed=seed)
    )
    again = NegativeSampler(seen, seed=9).sample(batch, 5)
    np.testing.assert_array_equal(again, NegativeSampler(seen, seed=9).sample(batch, 5))
    assert sampler.sample(batch, 0).shape == (40, 0)


def test_sample_usable_inside_tf_data_map_in_graph_mode():
    sampler = NegativeSampler(_seen([0, 0, 1], [1, 2, 0], 5), "popularity", 0.0)
    dataset = tf.data.Dataset.from_tensor_slices(np.array([0, 1, 0, 1])).batch(2)
    dataset = dataset.map(lambda users: sampler.sample(users, 50))
    first, second = list(dataset.as_numpy_iterator()), list(dataset.as_numpy_iterator())
    assert not np.array_equal(np.stack(first), np.stack(second))  # re-drawn each epoch
    for batch in first + second:
        assert not np.isin(batch[0], [1, 2]).any() and not np.isin(batch[1], [0]).any()


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_built_here_makes_its_tables_inside_a_dataset_function(distribution):
    """As a parameter-server worker runs it: the dataset function is traced once and may
    create no variable; its tables live in it; seeded draws equal the usual sampler's."""
    seen = _random_seen()
    sampler = NegativeSampler(seen, distribution, seed=3)
    users = tf.range(40, dtype=tf.int64)

    def refuse_variables(next_creator, **kwargs):
        raise AssertionError("a dataset function must not create variables")

    @tf.function
    def dataset_fn():
        local = sampler.built_here()
        rows = tf.data.Dataset.from_tensors(users)
        return rows.map(lambda u: local.sample(u, 6, seed=tf.constant([1, 2], tf.int64)))

    with tf.variable_creator_scope(refuse_variables):
        concrete = dataset_fn.get_concrete_function()
    ((drawn,),) = [list(concrete().as_numpy_iterator())]
    np.testing.assert_array_equal(drawn, sampler.sample(users, 6, seed=tf.constant([1, 2])))
    positives = _positive_sets(seen)
    assert not any(item in positives[u] for u, row in enumerate(drawn) for item in row)
    assert sampler._graph is not None and sampler.built_here()._graph is not sampler._graph


def test_sample_users_without_positives_get_plain_draws():
    empty = SeenItems.empty(3, 4)
    drawn = NegativeSampler(empty, seed=0).sample(tf.zeros([500], tf.int64), 2)
    assert sorted(set(drawn.numpy().ravel().tolist())) == [0, 1, 2, 3]
    sampler = NegativeSampler(_seen([0], [2], 4, num_users=6), seed=0)
    other = sampler.sample(tf.constant([5] * 200), 2).numpy()  # user 5: no positives at all
    assert sorted(set(other.ravel().tolist())) == [0, 1, 2, 3]


# ---------------------------------------------------------------------- sample_distinct


def _random_seen_dense(rng, num_users, num_items, density):
    users, items = np.nonzero(rng.random((num_users, num_items)) < density)
    return SeenItems.from_pairs(users, items, num_users, num_items)


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
@pytest.mark.parametrize("density", [0.05, 0.85])  # 0.85 sends some rows to the exact fallback
def test_distinct_are_distinct_and_never_seen_nor_target(distribution, density, monkeypatch):
    fallback_rows = []
    complete = DistinctDraws._complete

    def spy(self, user_index, *args):
        fallback_rows.append(user_index.size)
        return complete(self, user_index, *args)

    monkeypatch.setattr(DistinctDraws, "_complete", spy)
    rng = np.random.default_rng(1)
    num_users, num_items, num_negatives = 40, 200, 10
    seen = _random_seen_dense(rng, num_users, num_items, density)
    counts = rng.integers(1, 50, num_items).astype(float) if distribution == "popularity" else None
    users = np.arange(num_users)
    targets = rng.integers(0, num_items, num_users)
    sampler = NegativeSampler(seen, distribution, item_counts=counts, seed=7)
    negatives = sampler.sample_distinct(users, targets, num_negatives)
    assert negatives.shape == (num_users, num_negatives) and negatives.dtype == np.int64
    assert not seen.contains(users, negatives).any()
    assert not (negatives == targets[:, None]).any()
    assert (np.diff(np.sort(negatives, axis=1), axis=1) > 0).all()
    assert negatives.min() >= 0 and negatives.max() < num_items
    assert (sum(fallback_rows) > 0) == (density > 0.5)


def test_distinct_zero_count_items_are_never_drawn():
    counts = np.array([0, 5, 0, 1, 1, 1, 0, 1, 1, 0], dtype=float)  # 6 drawable items
    sampler = NegativeSampler(SeenItems.empty(30, 10), "popularity", item_counts=counts)
    negatives = sampler.sample_distinct(np.arange(30), np.full(30, 1), 5)
    assert not np.isin(negatives, [0, 1, 2, 6, 9]).any()  # zero counts, and the target 1
    np.testing.assert_array_equal(sampler.available(np.array([0]), np.array([1])), [5])


def test_distinct_reproducible_per_user_whatever_the_batching_and_order():
    rng = np.random.default_rng(2)
    seen = _random_seen_dense(rng, 50, 100, 0.5)
    users = np.arange(50)
    targets = rng.integers(0, 100, 50)
    sampler = NegativeSampler(seen, seed=11)
    first = sampler.sample_distinct(users, targets, 20)
    np.testing.assert_array_equal(
        first, NegativeSampler(seen, seed=11).sample_distinct(users, targets, 20)
    )
    halves = np.concatenate(
        [
            sampler.sample_distinct(users[:17], targets[:17], 20),
            sampler.sample_distinct(users[17:], targets[17:], 20),
        ]
    )
    np.testing.assert_array_equal(first, halves)
    permutation = rng.permutation(50)
    np.testing.assert_array_equal(
        first[permutation], sampler.sample_distinct(users[permutation], targets[permutation], 20)
    )
    other_seed = NegativeSampler(seen, seed=12).sample_distinct(users, targets, 20)
    assert (np.sort(other_seed, 1) != np.sort(first, 1)).any()


def _successive_sampling_probabilities(weights, size):
    """Exact probability of each unordered set under draws without replacement ∝ weights."""
    probabilities = {}
    for ordered in itertools.permutations(range(len(weights)), size):
        probability, remaining = 1.0, float(np.sum(weights))
        for item in ordered:
            probability *= weights[item] / remaining
            remaining -= weights[item]
        key = tuple(sorted(ordered))
        probabilities[key] = probabilities.get(key, 0.0) + probability
    return probabilities


# Item 0 is seen by every user and carries weight `blocked`: the larger it is, the fewer of
# the 2M+64 fast-path draws survive, so 0 -> fast path only, 300 -> about 40% of rows fall
# back, 5000 -> nearly all rows take the exact fallback. The distribution must not change.
@pytest.mark.parametrize(
    ("blocked", "alpha"), [(0.0, 1.0), (300.0, 1.0), (5000.0, 1.0), (300.0, 0.5)]
)
def test_distinct_popularity_matches_successive_sampling(blocked, alpha):
    num_users = 20000
    counts = np.array([blocked, 1.0, 2.0, 3.0, 5.0, 0.0])
    seen = SeenItems.from_pairs(np.arange(num_users), np.zeros(num_users, int), num_users, 6)
    sampler = NegativeSampler(seen, "popularity", alpha=alpha, item_counts=counts, seed=3)
    negatives = sampler.sample_distinct(np.arange(num_users), np.full(num_users, 5), 2)
    expected = _successive_sampling_probabilities(counts[1:5] ** alpha, 2)
    pairs, observed = np.unique(np.sort(negatives, axis=1) - 1, axis=0, return_counts=True)
    observed = dict(zip(map(tuple, pairs.tolist()), observed.tolist(), strict=True))
    assert set(observed) <= set(expected)
    chi2 = sum(
        (observed.get(k, 0) - num_users * p) ** 2 / (num_users * p) for k, p in expected.items()
    )
    assert chi2 < 20.5  # 5 degrees of freedom: p = 0.001


def test_distinct_uniform_is_uniform_over_allowed_items():
    num_users = 6000
    seen = SeenItems.from_pairs(np.arange(num_users), np.full(num_users, 2), num_users, 8)
    negatives = NegativeSampler(seen).sample_distinct(
        np.arange(num_users), np.zeros(num_users, int), 3
    )
    frequency = np.bincount(negatives.ravel(), minlength=8)
    assert frequency[0] == 0 and frequency[2] == 0
    expected = num_users * 3 / 6  # 6 allowed items, 3 drawn per user
    chi2 = np.sum((frequency[[1, 3, 4, 5, 6, 7]] - expected) ** 2 / expected)
    assert chi2 < 20.5


def test_distinct_popularity_defaults_to_users_per_item():
    # item counts from the seen set: item 0 has 3 users, item 1 has 1, items 2 and 3 none.
    seen = _seen([0, 1, 2, 2], [0, 0, 0, 1], 4, num_users=4)
    sampler = NegativeSampler(seen, "popularity")
    np.testing.assert_allclose(sampler.probabilities, [0.75, 0.25, 0, 0])
    np.testing.assert_array_equal(sampler.sample_distinct([3, 3], [0, 1], 1), [[1], [0]])
    np.testing.assert_array_equal(
        sampler.available(np.array([3, 3, 2]), np.array([2, 0, 3])), [2, 1, 0]
    )


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"seen": "pairs"}, "must be a tfrec.data.SeenItems.*Received: seen=str"),
        ({"distribution": "zipf"}, r"Unknown distribution. Received: distribution='zipf'"),
        ({"alpha": -1.0}, r"alpha must be finite and >= 0. Received: alpha=-1.0"),
        ({"seed": -1}, r"seed must be a non-negative integer or None. Received: seed=-1"),
        ({"item_counts": np.ones(3)}, "only used with distribution='popularity'"),
        ({"distribution": "popularity", "item_counts": np.ones(4)},
         r"item_counts must have shape \(3,\). Received: shape=\(4,\)"),
        ({"distribution": "popularity", "item_counts": np.array([1.0, -1.0, 0.0])},
         "finite and non-negative"),
        ({"distribution": "popularity", "item_counts": np.zeros(3)},
         "at least one item with a positive count"),
    ],
)  # fmt: skip
def test_bad_sampler_arguments(kwargs, pattern):
    arguments = {"seen": _seen([0, 1], [0, 1], 3), **kwargs}
    with pytest.raises(ValueError, match=pattern):
        NegativeSampler(**arguments)


def test_sample_errors_when_no_negative_exists():
    with pytest.raises(ValueError, match="User 0 has every one of the 3 items"):
        NegativeSampler(_seen([0, 0, 0, 1], [0, 1, 2, 0], 3)).sample(tf.constant([1]), 2)
    popular = NegativeSampler(_seen([0, 0, 1], [0, 1, 0], 3), "popularity")  # item 2: count 0
    with pytest.raises(ValueError, match="User 0 has every item of non-zero popularity"):
        popular.sample(tf.constant([1]), 2)
    with pytest.raises(ValueError, match="num_negatives must be an integer >= 0"):
        NegativeSampler(_seen([0], [0], 3)).sample(tf.constant([0]), -1)


def test_sample_distinct_errors():
    sampler = NegativeSampler(_seen([0, 0], [0, 1], 5))
    with pytest.raises(ValueError, match=r"user 0 has only 2 items to draw.*num_negatives=3"):
        sampler.sample_distinct(np.array([0]), np.array([2]), 3)
    with pytest.raises(ValueError, match="num_negatives must be an integer >= 1"):
        sampler.sample_distinct(np.array([0]), np.array([2]), 0)
    with pytest.raises(ValueError, match=r"seen.num_users=1\). Received: user_index value 1"):
        sampler.sample_distinct(np.array([1]), np.array([2]), 1)
    with pytest.raises(ValueError, match=r"target_index must lie in \[0, num_items=5\)"):
        sampler.sample_distinct(np.array([0]), np.array([5]), 1)
    with pytest.raises(ValueError, match="same length"):
        sampler.sample_distinct(np.array([0, 0]), np.array([2]), 1)

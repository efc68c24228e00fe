"""NegativeSampler: validity, determinism, and the sampling distribution (both code paths)."""

import itertools

import numpy as np
import pytest

from tfrec.evaluation import ExcludeSet, NegativeSampler


def _random_exclude(rng, num_users, num_items, density):
    mask = rng.random((num_users, num_items)) < density
    users, items = np.nonzero(mask)
    return ExcludeSet.from_pairs(users, items, num_users, num_items)


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
@pytest.mark.parametrize("density", [0.05, 0.85])  # 0.85 sends some rows to the exact fallback
def test_negatives_are_distinct_and_never_excluded_nor_target(distribution, density, monkeypatch):
    fallback_rows = []
    complete = NegativeSampler._complete

    def spy(self, user_index, *args):
        fallback_rows.append(user_index.size)
        return complete(self, user_index, *args)

    monkeypatch.setattr(NegativeSampler, "_complete", spy)
    rng = np.random.default_rng(1)
    num_users, num_items, num_negatives = 40, 200, 10
    exclude = _random_exclude(rng, num_users, num_items, density)
    counts = rng.integers(1, 50, num_items).astype(float) if distribution == "popularity" else None
    users = np.arange(num_users)
    targets = rng.integers(0, num_items, num_users)
    sampler = NegativeSampler(num_items, exclude, distribution, counts, seed=7)
    negatives = sampler.sample(users, targets, num_negatives)
    assert negatives.shape == (num_users, num_negatives)
    assert not exclude.contains(users, negatives).any()
    assert not (negatives == targets[:, None]).any()
    sorted_negatives = np.sort(negatives, axis=1)
    assert (np.diff(sorted_negatives, axis=1) > 0).all()
    assert negatives.min() >= 0 and negatives.max() < num_items
    assert (sum(fallback_rows) > 0) == (density > 0.5)


def test_zero_count_items_are_never_drawn():
    exclude = ExcludeSet.empty(30, 10)
    counts = np.array([0, 5, 0, 1, 1, 1, 0, 1, 1, 0], dtype=float)  # 6 drawable items
    negatives = NegativeSampler(10, exclude, "popularity", counts).sample(
        np.arange(30), np.full(30, 1), 5
    )
    assert not np.isin(negatives, [0, 1, 2, 6, 9]).any()  # zero counts, and the target 1


def test_deterministic_given_seed_and_independent_of_batching_and_order():
    rng = np.random.default_rng(2)
    exclude = _random_exclude(rng, 50, 100, 0.5)
    users = np.arange(50)
    targets = rng.integers(0, 100, 50)
    sampler = NegativeSampler(100, exclude, seed=11)
    first = sampler.sample(users, targets, 20)
    np.testing.assert_array_equal(
        first, NegativeSampler(100, exclude, seed=11).sample(users, targets, 20)
    )
    halves = np.concatenate(
        [sampler.sample(users[:17], targets[:17], 20), sampler.sample(users[17:], targets[17:], 20)]
    )
    np.testing.assert_array_equal(first, halves)
    permutation = rng.permutation(50)
    np.testing.assert_array_equal(
        first[permutation], sampler.sample(users[permutation], targets[permutation], 20)
    )
    other_seed = NegativeSampler(100, exclude, seed=12).sample(users, targets, 20)
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


# Item 0 is excluded for every user and carries weight `blocked`: the larger it is, the fewer of
# the 2M+64 fast-path draws survive, so 0 -> fast path only, 300 -> about 40% of rows fall
# back, 5000 -> nearly all rows take the exact fallback. The distribution must not change.
@pytest.mark.parametrize("blocked", [0.0, 300.0, 5000.0])
def test_popularity_sampling_matches_successive_sampling(blocked):
    num_users = 20000
    counts = np.array([blocked, 1.0, 2.0, 3.0, 5.0, 0.0])
    exclude = ExcludeSet.from_pairs(np.arange(num_users), np.zeros(num_users, int), num_users, 6)
    negatives = NegativeSampler(6, exclude, "popularity", counts, seed=3).sample(
        np.arange(num_users), np.full(num_users, 5), 2
    )
    expected = _successive_sampling_probabilities(counts[1:5], 2)
    pairs, observed = np.unique(np.sort(negatives, axis=1) - 1, axis=0, return_counts=True)
    observed = dict(zip(map(tuple, pairs.tolist()), observed.tolist(), strict=True))
    assert set(observed) <= set(expected)
    chi2 = sum(
        (observed.get(k, 0) - num_users * p) ** 2 / (num_users * p) for k, p in expected.items()
    )
    assert chi2 < 20.5  # 5 degrees of freedom: p = 0.001


def test_uniform_sampling_is_uniform_over_allowed_items():
    num_users = 6000
    exclude = ExcludeSet.from_pairs(np.arange(num_users), np.full(num_users, 2), num_users, 8)
    negatives = NegativeSampler(8, exclude).sample(
        np.arange(num_users), np.zeros(num_users, int), 3
    )
    frequency = np.bincount(negatives.ravel(), minlength=8)
    assert frequency[0] == 0 and frequency[2] == 0
    expected = num_users * 3 / 6  # 6 allowed items, 3 drawn per user
    chi2 = np.sum((frequency[[1, 3, 4, 5, 6, 7]] - expected) ** 2 / expected)
    assert chi2 < 20.5


def test_errors():
    exclude = ExcludeSet.from_pairs(np.array([0, 0]), np.array([0, 1]), 1, 5)
    with pytest.raises(ValueError, match="only 2 items to draw"):
        NegativeSampler(5, exclude).sample(np.array([0]), np.array([2]), 3)
    with pytest.raises(ValueError, match="needs item_counts"):
        NegativeSampler(5, exclude, "popularity")
    with pytest.raises(ValueError, match="distribution must be one of"):
        NegativeSampler(5, exclude, "zipf")
    with pytest.raises(ValueError, match="same num_items"):
        NegativeSampler(6, exclude)
    with pytest.raises(ValueError, match="item_counts must have shape"):
        NegativeSampler(5, exclude, "popularity", np.ones(4))
    with pytest.raises(ValueError, match="seed"):
        NegativeSampler(5, exclude, seed=-1)
    sampler = NegativeSampler(5, exclude)
    with pytest.raises(ValueError, match="num_negatives must be positive"):
        sampler.sample(np.array([0]), np.array([2]), 0)
    with pytest.raises(ValueError, match="exclude.num_users"):
        sampler.sample(np.array([1]), np.array([2]), 1)
    with pytest.raises(ValueError, match="target_index must lie in"):
        sampler.sample(np.array([0]), np.array([5]), 1)
    with pytest.raises(ValueError, match="same length"):
        sampler.sample(np.array([0, 0]), np.array([2]), 1)

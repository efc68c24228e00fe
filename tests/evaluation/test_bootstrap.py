"""Paired bootstrap (tfrec/evaluation/bootstrap.py) against reference computations.

* per-row metric values average to exactly what `metrics_from_ranks` reports;
* the vectorised resampling equals a plain per-resample loop over the same index draws, with
  users holding different numbers of held-out rows;
* with one row per user, the percentile interval matches scipy.stats.bootstrap's (paired,
  percentile) up to Monte Carlo error;
* hand-made hit arrays whose answer is known: a constant difference has a zero-width interval.
"""

import numpy as np
import pytest

from tfrec.evaluation import metrics_from_ranks, mrr
from tfrec.evaluation.bootstrap import (
    bootstrap_differences,
    compare_rows,
    paired_difference,
    per_row_metrics,
)


def test_per_row_values_average_to_the_evaluator_metrics():
    ranks = np.random.default_rng(0).integers(0, 60, 500)
    ks = (1, 5, 10)
    rows = per_row_metrics(ranks, ks)
    expected = metrics_from_ranks(ranks, ks)
    assert set(rows) == set(expected)
    for name, value in expected.items():
        assert rows[name].mean() == pytest.approx(value, abs=1e-12), name
    truncated = per_row_metrics(ranks, ks, depth=20)
    assert "mrr" not in truncated
    assert truncated["mrr@20"].mean() == pytest.approx(mrr(ranks, 20), abs=1e-12)


def test_vectorised_resampling_equals_a_loop_over_the_same_draws():
    # Five users with 1, 3, 2, 1 and 4 held-out rows.
    groups = np.array([7, 2, 2, 2, 9, 9, 4, 5, 5, 5, 5])
    a = np.array([1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1], float)
    b = np.array([1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1], float)
    reps, seed = 300, 11
    got = bootstrap_differences(a, b, groups, reps=reps, seed=seed)
    users = np.unique(groups)
    draws = np.random.default_rng(seed).integers(0, users.size, size=(reps, users.size))
    expected = []
    for draw in draws:  # the reference: rebuild each resample's rows and take the row mean
        rows = np.concatenate([np.flatnonzero(groups == users[u]) for u in draw])
        expected.append(np.mean(b[rows] - a[rows]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    result = paired_difference(a, b, groups, reps=reps, confidence=0.9, seed=seed)
    low, high = np.quantile(expected, [0.05, 0.95])
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)
    assert result.difference == pytest.approx(b.mean() - a.mean())
    p = 2 * min(np.mean(np.array(expected) <= 0), np.mean(np.array(expected) >= 0))
    assert result.p_value == pytest.approx(min(p, 1.0))


def test_interval_matches_scipy_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a = (rng.random(400) < 0.30).astype(float)  # per-user hits of model A
    b = (rng.random(400) < 0.36).astype(float)
    ours = paired_difference(a, b, np.arange(400), reps=20000, seed=1)
    reference = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.95,
        random_state=2,
    ).confidence_interval
    assert ours.low == pytest.approx(reference.low, abs=0.006)
    assert ours.high == pytest.approx(reference.high, abs=0.006)


def test_hand_made_hits():
    users = np.arange(8)
    a = np.array([1, 0, 1, 0, 0, 1, 0, 0], float)
    same = paired_difference(a, a.copy(), users, reps=200)
    assert (same.low, same.difference, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert same.verdict == "no difference"
    # B hits every user A hits, and two more: the difference is 2/8 on average, and every
    # resample's difference is >= 0 (B never loses a user).
    b = a.copy()
    b[[1, 3]] = 1
    better = paired_difference(a, b, users, reps=2000, seed=0)
    assert better.difference == pytest.approx(0.25)
    assert better.low >= 0 and better.high <= 1
    flipped = paired_difference(b, a, users, reps=2000, seed=0)
    assert (flipped.low, flipped.high) == pytest.approx((-better.high, -better.low))
    # Every user gains exactly one hit: a constant difference has no spread at all.
    constant = paired_difference(np.zeros(8), np.ones(8), users, reps=100)
    assert (constant.low, constant.high, constant.verdict) == (1.0, 1.0, "B better")


def test_compare_rows_uses_shared_metrics_and_same_resamples():
    ranks_a = np.array([0, 3, 12, 50, 1, 7])
    ranks_b = np.array([1, 2, 9, 60, 0, 7])
    users = np.arange(6)
    out = compare_rows(per_row_metrics(ranks_a), per_row_metrics(ranks_b), users, reps=500)
    assert set(out) == set(metrics_from_ranks(ranks_a))
    assert out["hr@10"].difference == pytest.approx(1 / 6)
    assert out["recall@10"] == out["hr@10"]  # same values, same resamples


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="same rows"):
        bootstrap_differences(np.zeros(3), np.zeros(4), np.arange(3))
    with pytest.raises(ValueError, match="groups"):
        bootstrap_differences(np.zeros(3), np.zeros(3), np.arange(4))
    with pytest.raises(ValueError, match="reps"):
        bootstrap_differences(np.zeros(3), np.zeros(3), np.arange(3), reps=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(np.zeros(3), np.zeros(3), np.arange(3), confidence=1.5)
    with pytest.raises(ValueError, match="ranks"):
        per_row_metrics(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="share no metric"):
        compare_rows({"hr@10": np.zeros(2)}, {"ndcg@10": np.zeros(2)}, np.arange(2))

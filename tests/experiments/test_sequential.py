"""mSPRT: Johari et al.'s formula, validity under continuous monitoring, power, intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from tfrec.experiments.sequential import msprt, msprt_batch, msprt_from_observations

ALPHA = 0.05


def _cumulative(y, every):
    """Per-look running means and sample variances over the last axis (vectorised)."""
    looks = np.arange(every, y.shape[-1] + 1, every)
    s1 = np.cumsum(y, axis=-1)[..., looks - 1]
    s2 = np.cumsum(y * y, axis=-1)[..., looks - 1]
    mean = s1 / looks
    return looks.astype(float), mean, (s2 - looks * mean**2) / (looks - 1)


def _monitor(control, treatment, tau, every=10, min_n=100):
    """Always-valid p-values and bounds of many sequences at once, plus naive z p-values."""
    n, mc, vc = _cumulative(control, every)
    _, mt, vt = _cumulative(treatment, every)
    variance = vc / n + vt / n
    p, lower, upper = msprt_batch(mt - mc, variance, tau, ALPHA, valid=n >= min_n)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero variance before any click
        naive = 2 * norm.sf(np.abs(mt - mc) / np.sqrt(variance))
    return p, lower, upper, np.where(n >= min_n, naive, 1.0)


def test_matches_johari_et_al_closed_form_for_equal_arms():
    # n pairs, known sigma: Lambda = sqrt(2s2 / (2s2 + n tau2)) exp(n^2 tau2 d^2 / (4 s2 (2s2 + n tau2)))
    n, sigma2, tau, d = 400, 2.0, 0.3, 0.25
    lam = math.sqrt(2 * sigma2 / (2 * sigma2 + n * tau**2)) * math.exp(
        n**2 * tau**2 * d**2 / (4 * sigma2 * (2 * sigma2 + n * tau**2))
    )
    p, lower, upper = msprt_batch([d], [2 * sigma2 / n], tau)
    assert p[0] == pytest.approx(min(1.0, 1 / lam))
    # Duality: the interval's edge is where the likelihood ratio reaches 1 / alpha.
    for edge in (lower[0], upper[0]):
        v = 2 * sigma2 / n
        at_edge = math.sqrt(v / (v + tau**2)) * math.exp(
            tau**2 * (d - edge) ** 2 / (2 * v * (v + tau**2))
        )
        assert at_edge == pytest.approx(1 / ALPHA)


def test_stays_valid_under_continuous_monitoring_unlike_naive_peeking():
    rng = np.random.default_rng(0)
    control, treatment = rng.normal(0, 1, (2, 2000, 2000))
    p, lower, upper, naive = _monitor(control, treatment, tau=0.1)
    ever = (p < ALPHA).any(axis=1).mean()
    assert ever <= ALPHA + 0.01
    assert (naive < ALPHA).any(axis=1).mean() > 3 * ALPHA  # peeking at z-tests: 20%+
    assert np.all(np.diff(p, axis=1) <= 0)  # running minimum: never goes back up
    assert np.all(lower[:, 1:] >= lower[:, :-1]) and np.all(upper[:, 1:] <= upper[:, :-1])
    excludes_zero = (lower > 0) | (upper < 0)
    np.testing.assert_array_equal(excludes_zero, p < ALPHA)


def test_stays_valid_for_conversions():
    rng = np.random.default_rng(1)
    control, treatment = (rng.random((2, 1500, 3000)) < 0.1).astype(float)
    p, *_ = _monitor(control, treatment, tau=0.02)
    assert (p < ALPHA).any(axis=1).mean() <= ALPHA + 0.01


def test_detects_a_real_effect_and_covers_it_at_all_times():
    rng = np.random.default_rng(2)
    control = rng.normal(0, 1, (1000, 2000))
    treatment = rng.normal(0.2, 1, (1000, 2000))
    p, lower, upper, _ = _monitor(control, treatment, tau=0.2)
    assert (p[:, -1] < ALPHA).mean() > 0.8
    ever_missed = ((lower > 0.2) | (upper < 0.2)).any(axis=1).mean()
    assert ever_missed <= ALPHA + 0.01


def test_result_from_a_stream_of_observations():
    rng = np.random.default_rng(3)
    arms = rng.random(6000) < 0.5
    values = rng.normal(5.0, 2.0, arms.size) + 0.3 * arms
    result = msprt_from_observations(values, arms, tau=0.3, looks=30)
    assert result.p_values.shape == (30,) and result.n_control[-1] + result.n_treatment[-1] == 6000
    # The same looks through per-arm summaries.
    positions = np.arange(200, 6001, 200)
    stats = []
    for mask in (~arms, arms):
        cut = [values[:k][mask[:k]] for k in positions]
        stats.append(([c.size for c in cut], [c.mean() for c in cut], [c.var(ddof=1) for c in cut]))
    (nc, mc, vc), (nt, mt, vt) = stats
    direct = msprt(nc, mc, vc, nt, mt, vt, tau=0.3)
    np.testing.assert_allclose(result.p_values, direct.p_values, rtol=1e-9)
    np.testing.assert_allclose(result.lower, direct.lower, rtol=1e-9)
    assert result.stopped_at is not None and result.verdict == "treatment better"
    assert result.lower[result.stopped_at] > 0
    assert "stopped at look" in str(result) and "always-valid p" in str(result)


def test_looks_before_min_n_are_skipped_and_inputs_checked():
    result = msprt([50, 150], [0.0, 0.0], [1.0, 1.0], [50, 150], [5.0, 5.0], [1.0, 1.0], tau=1.0)
    assert result.p_values[0] == 1.0 and np.isinf(result.lower[0])
    assert result.p_values[1] < 1e-6 and result.stopped_at == 1
    quiet = msprt([200], [0.0], [1.0], [200], [0.0], [1.0], tau=1.0)
    assert quiet.verdict == "no significant difference" and "not stopped" in str(quiet)
    with pytest.raises(ValueError, match="tau=0"):
        msprt_batch([0.1], [0.01], tau=0)
    with pytest.raises(ValueError, match="cannot decrease"):
        msprt([200, 100], [0, 0], [1, 1], [200, 200], [0, 0], [1, 1], tau=1.0)
    with pytest.raises(ValueError, match="looks"):
        msprt_from_observations(np.zeros(10), np.zeros(10, bool), tau=1.0, looks=[0, 5])

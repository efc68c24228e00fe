"""CUPED on correlated synthetic data: theta, variance reduction, unbiasedness."""

from __future__ import annotations

import numpy as np
import pytest

from tfrec.experiments.analysis import welch_test
from tfrec.experiments.cuped import cuped_adjust, cuped_test, cuped_theta

EFFECT = 0.3


def _experiment(rng, n=2000, slope=0.8, noise=1.0, effect=EFFECT):
    """Pre-period x ~ N(10, 3); in-test y = 2 + slope x + noise (+ effect in treatment)."""
    x = rng.normal(10.0, 3.0, (2, n))
    y = 2.0 + slope * x + rng.normal(0.0, noise, (2, n))
    y[1] += effect
    return y[0], x[0], y[1], x[1]


def test_theta_is_the_pooled_regression_slope():
    yc, xc, yt, xt = _experiment(np.random.default_rng(0))
    y, x = np.concatenate([yc, yt]), np.concatenate([xc, xt])
    theta = cuped_theta(y, x)
    assert theta == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert theta == pytest.approx(np.cov(x, y, ddof=0)[0, 1] / x.var())
    assert theta == pytest.approx(0.8, abs=0.02)
    result = cuped_test(yc, xc, yt, xt, planned=None)
    assert result.theta == pytest.approx(theta)
    adjusted = welch_test(
        cuped_adjust(yc, xc, theta, x.mean()), cuped_adjust(yt, xt, theta, x.mean()), planned=None
    )
    assert result.adjusted.p_value == pytest.approx(adjusted.p_value)
    assert result.adjusted.difference == pytest.approx(
        (yt.mean() - yc.mean()) - theta * (xt.mean() - xc.mean())
    )


def test_variance_reduction_is_about_the_squared_correlation():
    yc, xc, yt, xt = _experiment(np.random.default_rng(1))
    result = cuped_test(yc, xc, yt, xt, planned=None)
    rho2 = (0.8 * 3.0) ** 2 / ((0.8 * 3.0) ** 2 + 1.0)  # 0.852
    assert result.variance_reduction == pytest.approx(rho2, abs=0.02)
    raw_width = result.raw.ci[1] - result.raw.ci[0]
    adjusted_width = result.adjusted.ci[1] - result.adjusted.ci[0]
    assert adjusted_width == pytest.approx(raw_width * np.sqrt(1 - rho2), rel=0.05)
    assert "reduced by 8" in str(result) and "CUPED" in result.adjusted.test
    # With 200 users per arm the raw test mostly misses the effect; the adjusted one finds it.
    rng = np.random.default_rng(5)
    runs = [cuped_test(*_experiment(rng, n=200), planned=None) for _ in range(200)]
    raw_power = np.mean([r.raw.verdict == "treatment better" for r in runs])
    cuped_power = np.mean([r.verdict == "treatment better" for r in runs])
    assert raw_power < 0.35 and cuped_power > 0.75  # about 0.21 and 0.85 in theory


def test_adjusted_estimate_is_unbiased_and_less_variable():
    rng = np.random.default_rng(2)
    raw, adjusted = [], []
    for _ in range(400):
        result = cuped_test(*_experiment(rng, n=500), planned=None)
        raw.append(result.raw.difference)
        adjusted.append(result.adjusted.difference)
    raw, adjusted = np.array(raw), np.array(adjusted)
    assert abs(adjusted.mean() - EFFECT) < 3 * adjusted.std() / np.sqrt(adjusted.size)
    assert abs(raw.mean() - EFFECT) < 3 * raw.std() / np.sqrt(raw.size)
    assert adjusted.var() / raw.var() == pytest.approx(1 - 0.852, abs=0.04)


def test_uncorrelated_covariate_changes_little():
    rng = np.random.default_rng(3)
    yc, xc, yt, xt = _experiment(rng, slope=0.0)
    result = cuped_test(yc, xc, yt, xt, planned=None)
    assert abs(result.theta) < 0.05 and abs(result.variance_reduction) < 0.01


def test_cuped_honours_the_plan_and_rejects_bad_input():
    yc, xc, yt, xt = _experiment(np.random.default_rng(4), n=100)
    with pytest.raises(ValueError, match="before the planned sample size"):
        cuped_test(yc, xc, yt, xt, planned=500)
    assert cuped_test(yc, xc, yt, xt, planned=500, allow_early=True).adjusted.early
    with pytest.raises(ValueError, match="x with variance 0"):
        cuped_test(yc, np.ones(100), yt, np.ones(100), planned=None)
    with pytest.raises(ValueError, match="x_treatment with shape \\(99,\\)"):
        cuped_test(yc, xc, yt, xt[:99], planned=None)

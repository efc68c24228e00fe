"""The vectorised z-test and Welch's test against statsmodels, scipy and hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from tfrec.experiments.batch import welch_batch, z_test_batch

SM_ALTERNATIVE = {"two-sided": "two-sided", "larger": "larger", "smaller": "smaller"}
SCIPY_ALTERNATIVE = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}


def test_z_test_by_hand():
    # 200/1000 vs 250/1000: pooled rate 0.225, se = sqrt(.225 * .775 * (2 / 1000)).
    out = z_test_batch(200, 1000, 250, 1000)
    se = math.sqrt(0.225 * 0.775 * 0.002)
    assert float(out["statistic"]) == pytest.approx(0.05 / se) == pytest.approx(2.6774, abs=1e-4)
    assert float(out["p_value"]) == pytest.approx(math.erfc(0.05 / se / math.sqrt(2)))
    assert float(out["p_value"]) == pytest.approx(0.00742, abs=1e-5)
    wald = 1.959964 * math.sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000)
    assert float(out["low"]) == pytest.approx(0.05 - wald, abs=1e-6)
    assert float(out["lift"]) == pytest.approx(0.25)


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
@pytest.mark.parametrize("counts", [(200, 1000, 250, 1000), (31, 410, 22, 395), (5, 90, 9, 60)])
def test_z_test_matches_statsmodels(counts, alternative):
    xc, nc, xt, nt = counts
    out = z_test_batch(xc, nc, xt, nt, alternative=alternative)
    z, p = proportions_ztest([xt, xc], [nt, nc], alternative=SM_ALTERNATIVE[alternative])
    assert float(out["statistic"]) == pytest.approx(z, rel=1e-10)
    assert float(out["p_value"]) == pytest.approx(p, rel=1e-9)
    if alternative == "two-sided":
        low, high = confint_proportions_2indep(xt, nt, xc, nc, compare="diff", method="wald")
        assert (float(out["low"]), float(out["high"])) == pytest.approx((low, high), rel=1e-9)
        low, high = confint_proportions_2indep(xt, nt, xc, nc, compare="ratio", method="log")
        lift = (float(out["lift_low"]), float(out["lift_high"]))
        assert lift == pytest.approx((low - 1, high - 1), rel=1e-9)
    else:  # one-sided: the bound of a two-sided interval at level 1 - 2 alpha
        low, high = confint_proportions_2indep(
            xt, nt, xc, nc, compare="diff", method="wald", alpha=0.1
        )
        if alternative == "larger":
            assert (float(out["low"]), float(out["high"])) == pytest.approx((low, math.inf))
        else:
            assert (float(out["low"]), float(out["high"])) == pytest.approx((-math.inf, high))


def test_z_test_is_vectorised_and_handles_no_conversions():
    out = z_test_batch([200, 31, 0], [1000, 410, 100], [250, 22, 0], [1000, 395, 100])
    assert out["p_value"].shape == (3,)
    single = z_test_batch(31, 410, 22, 395)
    assert out["p_value"][1] == pytest.approx(float(single["p_value"]))
    assert out["p_value"][2] == 1.0 and out["statistic"][2] == 0.0


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_welch_matches_scipy(alternative):
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(5, 2, 40), rng.normal(5.8, 4, 70)
    out = welch_batch(
        control.mean(), control.var(ddof=1), control.size,
        treatment.mean(), treatment.var(ddof=1), treatment.size, alternative=alternative,
    )  # fmt: skip
    ref = stats.ttest_ind(
        treatment, control, equal_var=False, alternative=SCIPY_ALTERNATIVE[alternative]
    )
    assert float(out["statistic"]) == pytest.approx(ref.statistic, rel=1e-10)
    assert float(out["p_value"]) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(out["df"]) == pytest.approx(ref.df, rel=1e-10)
    interval = ref.confidence_interval(0.95)
    assert (float(out["low"]), float(out["high"])) == pytest.approx(
        (interval.low, interval.high), rel=1e-9
    )


def test_welch_by_hand():
    # Two tiny samples worked through the Welch-Satterthwaite formulas.
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 5  # 5/12 and 2
    t = (6.0 - 2.5) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    out = welch_batch(2.5, a.var(ddof=1), 4, 6.0, b.var(ddof=1), 5)
    assert float(out["statistic"]) == pytest.approx(t) == pytest.approx(2.2514, abs=1e-4)
    assert float(out["df"]) == pytest.approx(df) == pytest.approx(5.5208, abs=1e-4)
    assert float(out["p_value"]) == pytest.approx(2 * stats.t.sf(t, df))


def test_intervals_cover_the_truth_at_their_level():
    # 4000 simulated experiments at once: each 95% interval covers the truth ~95% of the time.
    rng = np.random.default_rng(11)
    reps, n = 4000, 500
    xc, xt = rng.binomial(n, 0.10, reps), rng.binomial(n, 0.13, reps)
    out = z_test_batch(xc, n, xt, n)
    assert np.mean((out["low"] < 0.03) & (0.03 < out["high"])) == pytest.approx(0.95, abs=0.012)
    lift = 0.13 / 0.10 - 1
    covered = (out["lift_low"] < lift) & (lift < out["lift_high"])
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)

    c = rng.exponential(2.0, (reps, 300))
    t = rng.exponential(2.4, (reps, 200))
    out = welch_batch(c.mean(1), c.var(1, ddof=1), 300, t.mean(1), t.var(1, ddof=1), 200)
    assert np.mean((out["low"] < 0.4) & (0.4 < out["high"])) == pytest.approx(0.95, abs=0.012)
    covered = (out["lift_low"] < 0.2) & (0.2 < out["lift_high"])
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)

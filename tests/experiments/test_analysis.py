"""Fixed-horizon analysis: results, verdicts, the SRM check and the refusal to peek."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from tfrec.experiments.analysis import (
    PeekingError,
    planned_sizes,
    proportion_test,
    srm_check,
    welch_test,
)
from tfrec.experiments.design import conversion_sample_size

PLAN = conversion_sample_size(0.10, absolute_mde=0.02)  # 3,841 per arm, 50/50


def test_proportion_test_result_matches_statsmodels_and_reads_well():
    result = proportion_test(400, 3900, 470, 3850, planned=PLAN)
    z, p = proportions_ztest([470, 400], [3850, 3900])
    assert result.statistic == pytest.approx(z) and result.p_value == pytest.approx(p)
    assert result.control == pytest.approx(400 / 3900)
    assert result.lift == pytest.approx((470 / 3850) / (400 / 3900) - 1)
    assert result.ci[0] < result.difference < result.ci[1]
    assert result.verdict == "treatment better" and result.significant and not result.early
    assert result.srm is not None and not result.srm.mismatch
    text = str(result)
    assert "verdict: treatment better" in text and "planned 3,841 / 3,841 per arm: reached" in text
    assert "SRM check ok" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.5


def test_verdicts():
    assert proportion_test(470, 3850, 400, 3900, planned=PLAN).verdict == "treatment worse"
    assert proportion_test(400, 3900, 405, 3850, planned=PLAN).verdict == (
        "no significant difference"
    )
    # A one-sided test for an improvement never calls a drop significant.
    worse = proportion_test(470, 3850, 400, 3900, planned=None, alternative="larger")
    assert worse.p_value > 0.99 and worse.verdict == "no significant difference"


def test_plan_supplies_alpha_alternative_and_split():
    plan = conversion_sample_size(
        0.10, absolute_mde=0.02, alpha=0.01, alternative="larger", shares=(0.8, 0.2)
    )
    result = proportion_test(1600, plan.n_control, 460, plan.n_treatment, planned=plan)
    assert (result.alpha, result.alternative) == (0.01, "larger")
    assert result.srm.expected == pytest.approx(
        ((plan.n_control + plan.n_treatment) * 0.8, (plan.n_control + plan.n_treatment) * 0.2)
    )
    assert result.ci[1] == np.inf and "one-sided" in result.summary()


def test_refuses_to_analyse_before_the_planned_size():
    with pytest.raises(PeekingError, match=r"control has 1,200 of 3,841") as caught:
        proportion_test(130, 1200, 150, 1190, planned=PLAN)
    message = str(caught.value)
    assert "allow_early=True" in message and "msprt" in message and "Received:" in message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(PeekingError, match="treatment 3,000 of 3,841"):
        proportion_test(400, 3900, 350, 3000, planned=PLAN)
    with pytest.raises(PeekingError):
        welch_test(np.ones(50), np.ones(60), planned=(100, 50))

    interim = proportion_test(130, 1200, 150, 1190, planned=PLAN, allow_early=True)
    assert interim.early and "INTERIM LOOK" in str(interim)
    assert not proportion_test(130, 1200, 150, 1190, planned=None).early
    assert not proportion_test(130, 1200, 150, 1190, planned=1000).early


def test_srm_check_matches_scipy_and_detects_a_mismatch():
    ok = srm_check((5000, 5050), (0.5, 0.5))
    assert ok.p_value == pytest.approx(stats.chisquare([5000, 5050]).pvalue)
    assert not ok.mismatch
    bad = srm_check({"control": 5000, "treatment": 5400}, {"control": 0.5, "treatment": 0.5})
    assert bad.mismatch and bad.statistic == pytest.approx(2 * 200**2 / 5200)
    assert "MISMATCH" in str(bad)
    # Shares of part of the traffic are normalised; unequal plans are checked as planned.
    assert not srm_check((8000, 2000), (0.08, 0.02)).mismatch
    assert srm_check((5000, 5000), (0.8, 0.2)).mismatch
    three = srm_check([3300, 3350, 3350], [1, 1, 1])
    assert three.p_value == pytest.approx(stats.chisquare([3300, 3350, 3350]).pvalue)


def test_srm_overrides_a_significant_result():
    result = proportion_test(400, 3900, 560, 4600, planned=PLAN)
    assert result.significant and result.srm.mismatch
    assert result.verdict == "SRM: do not trust"
    assert proportion_test(400, 3900, 560, 4600, planned=3841).srm is None  # no split: no check
    assert proportion_test(400, 3900, 560, 4600, planned=3841, shares=(0.5, 0.5)).verdict == (
        "SRM: do not trust"
    )


def test_welch_test_matches_scipy():
    rng = np.random.default_rng(0)
    control, treatment = rng.gamma(2.0, 3.0, 800), rng.gamma(2.0, 3.4, 820)
    result = welch_test(control, treatment, planned=(800, 800), shares=(0.5, 0.5))
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.statistic == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)
    interval = ref.confidence_interval()
    assert result.ci == pytest.approx((interval.low, interval.high))
    assert result.verdict == "treatment better" and result.test == "Welch's t-test"


def test_planned_sizes_forms():
    assert planned_sizes(PLAN) == (3841, 3841)
    assert planned_sizes(100) == (100, 100)
    assert planned_sizes((300, 100)) == (300, 100)
    assert planned_sizes(None) is None
    for bad in (0, True, (1, 2, 3), "100", 1.5):
        with pytest.raises(ValueError, match="planned="):
            planned_sizes(bad)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: proportion_test(10, 5, 1, 5, planned=None), "conversions_control=10"),
        (lambda: proportion_test(-1, 5, 1, 5, planned=None), "conversions_control=-1"),
        (lambda: proportion_test(1, 5, 1, 0, planned=None), "n_treatment=0"),
        (lambda: proportion_test(1.0, 5, 1, 5, planned=None), "conversions_control=1.0"),
        (lambda: proportion_test(1, 5, 1, 5, planned=None, alpha=2), "alpha=2"),
        (lambda: proportion_test(1, 5, 1, 5, planned=None, alternative="up"), "alternative="),
        (lambda: welch_test([1.0], [1.0, 2.0], planned=None), "control with shape"),
        (lambda: welch_test([1.0, 2.0], [1.0, np.nan], planned=None), "treatment with shape"),
        (lambda: srm_check([5, 5], [0.5]), "observed="),
        (lambda: srm_check([0, 0], [0.5, 0.5]), "positive total"),
    ],
)
def test_bad_input_names_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_planned_is_required():
    with pytest.raises(TypeError, match="planned"):
        proportion_test(1, 5, 1, 5)

"""Sample sizes against closed-form textbook formulas and statsmodels' own solvers."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from tfrec.experiments.design import (
    SampleSize,
    continuous_sample_size,
    conversion_sample_size,
    duration_days,
)

Z_975, Z_80 = norm.ppf(0.975), norm.ppf(0.8)


def test_textbook_example_normal_approximation_gives_3841_per_arm():
    # Fleiss (no continuity correction): pooled variance under H0, unpooled under H1.
    p1, p2 = 0.10, 0.12
    pbar = (p1 + p2) / 2
    by_hand = (
        Z_975 * math.sqrt(2 * pbar * (1 - pbar)) + Z_80 * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / 0.02**2
    assert by_hand == pytest.approx(3840.85, abs=0.01)
    plan = conversion_sample_size(0.10, absolute_mde=0.02)
    assert (plan.n_control, plan.n_treatment, plan.total) == (3841, 3841, 7682)
    assert plan.method == "normal" and plan.relative_mde == pytest.approx(0.2)


def test_textbook_example_arcsine_gives_3835_per_arm():
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))  # Cohen's h
    by_hand = 2 * (Z_975 + Z_80) ** 2 / h**2
    assert by_hand == pytest.approx(3834.6, abs=0.1)
    plan = conversion_sample_size(0.10, absolute_mde=0.02, method="arcsine")
    assert (plan.n_control, plan.n_treatment) == (3835, 3835)


def test_unequal_split_matches_statsmodels_and_closed_form():
    # 80% control / 20% treatment: nobs_control = 4 * nobs_treatment.
    h = proportion_effectsize(0.12, 0.10)
    expected = NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=4.0)
    arcsine = conversion_sample_size(0.10, absolute_mde=0.02, method="arcsine", shares=(0.8, 0.2))
    assert arcsine.n_treatment == math.ceil(expected)
    assert arcsine.n_control == math.ceil(expected * 4)

    r, pc, pt = 4.0, 0.10, 0.12
    pbar = (pt + r * pc) / (1 + r)
    by_hand = (
        Z_975 * math.sqrt(pbar * (1 - pbar) * (1 + 1 / r))
        + Z_80 * math.sqrt(pt * (1 - pt) + pc * (1 - pc) / r)
    ) ** 2 / 0.02**2
    normal = conversion_sample_size(0.10, absolute_mde=0.02, shares=(0.8, 0.2))
    assert normal.n_treatment == math.ceil(by_hand)
    assert normal.n_control == math.ceil(by_hand * 4)
    assert normal.total > conversion_sample_size(0.10, absolute_mde=0.02).total


def test_one_sided_uses_the_one_sided_quantile():
    p1, p2 = 0.10, 0.12
    pbar = (p1 + p2) / 2
    z = norm.ppf(0.95)
    by_hand = (
        z * math.sqrt(2 * pbar * (1 - pbar)) + Z_80 * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / 0.02**2
    plan = conversion_sample_size(0.10, absolute_mde=0.02, alternative="larger")
    assert plan.n_treatment == math.ceil(by_hand) == 3026
    down = conversion_sample_size(0.12, absolute_mde=-0.02, alternative="smaller")
    assert down.n_control > 0 and down.absolute_mde == -0.02


def test_relative_mde_is_a_lift_over_the_baseline():
    relative = conversion_sample_size(0.10, relative_mde=0.2)
    absolute = conversion_sample_size(0.10, absolute_mde=0.02)
    assert relative.n_control == absolute.n_control
    assert relative.absolute_mde == pytest.approx(0.02)


def test_continuous_metric_matches_ttest_and_normal_power():
    plan = continuous_sample_size(10.0, absolute_mde=2.0)  # d = 0.2
    assert plan.n_control == math.ceil(TTestIndPower().solve_power(0.2, alpha=0.05, power=0.8))
    assert plan.n_control == 394
    normal = continuous_sample_size(10.0, absolute_mde=2.0, method="normal")
    assert normal.n_control == math.ceil(2 * (Z_975 + Z_80) ** 2 / 0.2**2) == 393
    assert normal.n_control == pytest.approx(16 / 0.2**2, rel=0.02)  # Lehr's rule of thumb
    relative = continuous_sample_size(10.0, relative_mde=0.05, baseline_mean=40.0)
    assert relative.n_control == plan.n_control and relative.absolute_mde == pytest.approx(2.0)
    split = continuous_sample_size(10.0, absolute_mde=2.0, shares=(0.25, 0.75), alpha=0.01)
    expected = TTestIndPower().solve_power(0.2, alpha=0.01, power=0.8, ratio=1 / 3)
    assert split.n_treatment == math.ceil(expected)


def test_duration_from_daily_traffic_and_shares():
    plan = conversion_sample_size(0.10, absolute_mde=0.02, daily_traffic=1000)
    assert plan.days == 8  # 7,682 users at 1,000 a day
    assert duration_days(3841, 3841, 1000, (0.05, 0.05)) == 77  # 10% of traffic in the test
    assert duration_days(4000, 1000, 1000, (0.8, 0.2)) == 5
    assert duration_days(4000, 1000, 1000, (0.5, 0.5)) == 8  # the control arm is the bottleneck
    text = str(plan)
    assert "3,841 control + 3,841 treatment = 7,682 users" in text and "8 day(s)" in text


def test_sample_size_is_frozen():
    plan = conversion_sample_size(0.10, absolute_mde=0.02)
    assert isinstance(plan, SampleSize)
    with pytest.raises(AttributeError):
        plan.n_control = 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(baseline_rate=0.1), "exactly one of"),
        (dict(baseline_rate=0.1, absolute_mde=0.01, relative_mde=0.1), "exactly one of"),
        (dict(baseline_rate=1.5, absolute_mde=0.01), "baseline_rate=1.5"),
        (dict(baseline_rate=0.95, absolute_mde=0.1), "baseline_rate \\+ MDE"),
        (dict(baseline_rate=0.1, absolute_mde=0.01, alpha=0), "alpha=0"),
        (dict(baseline_rate=0.1, absolute_mde=-0.01, alternative="larger"), "other sign"),
        (dict(baseline_rate=0.1, absolute_mde=0.01, alternative="bigger"), "alternative="),
        (dict(baseline_rate=0.1, absolute_mde=0.01, shares=(0.7, 0.7)), "shares=\\(0.7, 0.7\\)"),
        (dict(baseline_rate=0.1, absolute_mde=0.01, method="exact"), "method="),
    ],
)
def test_conversion_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conversion_sample_size(**kwargs)


def test_continuous_bad_input_names_the_field():
    with pytest.raises(ValueError, match="baseline_mean=None"):
        continuous_sample_size(1.0, relative_mde=0.1)
    with pytest.raises(ValueError, match="baseline_std=0"):
        continuous_sample_size(0, absolute_mde=0.1)
    with pytest.raises(ValueError, match="daily_traffic=-5"):
        continuous_sample_size(1.0, absolute_mde=0.1, daily_traffic=-5)


def test_missing_statsmodels_names_the_extra():
    # A fresh interpreter where scipy and statsmodels cannot be imported: the package still
    # imports, and a statistical function says which extra to install.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('statsmodels', 'scipy'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import tfrec.experiments as e\n"
        "assert 'statsmodels' not in sys.modules\n"
        "print(e.Assignment('s', {'a': 0.5, 'b': 0.5}).variants(['1']).tolist())\n"
        "try:\n"
        "    e.conversion_sample_size(0.1, absolute_mde=0.02)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'tfrec[experiments]'" in done.stdout

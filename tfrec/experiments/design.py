"""How many users, and how many days, an A/B test needs before it is run.

An A/B test is only as good as its plan: deciding the sample size up front, for the smallest
effect worth detecting (the minimum detectable effect, MDE), is what makes its p-value mean
anything and what the fixed-horizon tests in `tfrec.experiments.analysis` check against.

Conversion metrics (click-through, hit rate) use the two-proportion normal approximation that
matches the pooled z-test of the analysis (statsmodels'
``samplesize_proportions_2indep_onetail``: pooled variance under the null, unpooled under the
alternative), or Cohen's arcsine effect size with ``NormalIndPower``. Continuous metrics
(watch time) use ``TTestIndPower`` (or ``NormalIndPower``) on ``MDE / std``. Worked example:
baseline 10%, MDE +2 points, alpha 0.05 two-sided, power 0.8 needs 3,841 users per arm with
the normal approximation and 3,835 with the arcsine one.
"""

from __future__ import annotations

import dataclasses
import math

from tfrec.experiments import _deps

ALTERNATIVES = ("two-sided", "larger", "smaller")
_CONVERSION_METHODS = ("normal", "arcsine")
_CONTINUOUS_METHODS = ("t", "normal")


@dataclasses.dataclass(frozen=True)
class SampleSize:
    """A sample-size plan: users per arm, total, days, and the inputs that produced them.

    It exists so the plan travels with the analysis: pass it as ``planned=`` to the tests in
    `tfrec.experiments.analysis`, which refuse to give a fixed-horizon verdict before both arms
    reach it and check the observed split against `shares`.
    """

    metric: str
    n_control: int
    n_treatment: int
    days: int | None
    baseline: float | None
    std: float | None
    absolute_mde: float
    relative_mde: float | None
    alpha: float
    power: float
    alternative: str
    shares: tuple[float, float]
    daily_traffic: float | None
    method: str

    @property
    def total(self) -> int:
        """Users in both arms together."""
        return self.n_control + self.n_treatment

    def __str__(self) -> str:
        mde = f"{self.absolute_mde:+.4g} absolute"
        if self.relative_mde is not None:
            mde += f" ({self.relative_mde:+.2%} relative)"
        base = "" if self.baseline is None else f"baseline {self.baseline:.4g}, "
        std = "" if self.std is None or self.metric == "conversion" else f"std {self.std:.4g}, "
        days = (
            ""
            if self.days is None
            else (f"; {self.days} day(s) at {self.daily_traffic:,.0f} eligible users/day")
        )
        return (
            f"{self.metric} metric ({base}{std}MDE {mde}; alpha {self.alpha:g} "
            f"{self.alternative}, power {self.power:g}, split "
            f"{self.shares[0]:g}/{self.shares[1]:g}, {self.method}): "
            f"{self.n_control:,} control + {self.n_treatment:,} treatment = "
            f"{self.total:,} users{days}"
        )


def duration_days(n_control: int, n_treatment: int, daily_traffic: float, shares) -> int:
    """Days until both arms reach their size, given new eligible users per day and the split.

    `daily_traffic` counts new eligible users (units) per day: returning users add no sample.
    `shares` are the fractions of that traffic each arm receives (they may sum to less than 1
    when only part of the traffic is in the experiment).
    """
    control, treatment = _check_shares(shares)
    if not (isinstance(daily_traffic, int | float) and daily_traffic > 0):
        raise ValueError(
            "`daily_traffic` must be a positive number of eligible users per day. "
            f"Received: daily_traffic={daily_traffic!r}"
        )
    needed = max(n_control / (daily_traffic * control), n_treatment / (daily_traffic * treatment))
    return max(1, math.ceil(needed - 1e-9))


def conversion_sample_size(
    baseline_rate: float,
    *,
    absolute_mde: float | None = None,
    relative_mde: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    shares=(0.5, 0.5),
    daily_traffic: float | None = None,
    method: str = "normal",
) -> SampleSize:
    """Users per arm to detect a change of a conversion rate (CTR, hit rate).

    Args:
      baseline_rate: The control arm's rate, in (0, 1).
      absolute_mde: The smallest difference worth detecting, in rate points (0.02 = +2
        points). Give exactly one of `absolute_mde` and `relative_mde`.
      relative_mde: The same as a lift over the baseline (0.05 = +5%).
      alpha: Type I error rate. power: Probability of detecting an effect of size MDE.
      alternative: ``"two-sided"``, ``"larger"`` (treatment above control) or ``"smaller"``.
      shares: ``(control, treatment)`` fractions of the traffic; unequal splits change the
        ratio of the arms (and need more users in total).
      daily_traffic: New eligible users per day; when given, `days` is filled in.
      method: ``"normal"`` (matches the pooled two-proportion z-test) or ``"arcsine"``
        (Cohen's h with ``NormalIndPower``).
    """
    _check_open_unit("baseline_rate", baseline_rate)
    absolute, relative = _mde(absolute_mde, relative_mde, baseline_rate)
    _check_open_unit("baseline_rate + MDE", baseline_rate + absolute)
    _check_common(alpha, power, alternative, absolute)
    if method not in _CONVERSION_METHODS:
        raise ValueError(f"`method` must be one of {_CONVERSION_METHODS}. Received: {method=}")
    control_share, treatment_share = _check_shares(shares)
    ratio = control_share / treatment_share  # statsmodels' nobs2 / nobs1, nobs1 = treatment
    sided = "two-sided" if alternative == "two-sided" else "larger"
    if method == "normal":
        n_treatment = _deps.sm_proportion().samplesize_proportions_2indep_onetail(
            absolute, baseline_rate, power, ratio=ratio, alpha=alpha, alternative=sided
        )
    else:
        effect = _deps.sm_proportion().proportion_effectsize(
            baseline_rate + absolute, baseline_rate
        )
        n_treatment = (
            _deps.sm_power()
            .NormalIndPower()
            .solve_power(
                effect_size=abs(effect), alpha=alpha, power=power, ratio=ratio, alternative=sided
            )
        )
    std = math.sqrt(baseline_rate * (1 - baseline_rate))
    return _plan(
        "conversion",
        n_treatment,
        ratio,
        baseline_rate,
        std,
        absolute,
        relative,
        alpha,
        power,
        alternative,
        (control_share, treatment_share),
        daily_traffic,
        method,
    )


def continuous_sample_size(
    baseline_std: float,
    *,
    absolute_mde: float | None = None,
    relative_mde: float | None = None,
    baseline_mean: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    shares=(0.5, 0.5),
    daily_traffic: float | None = None,
    method: str = "t",
) -> SampleSize:
    """Users per arm to detect a change of a continuous metric's mean (watch time, clicks).

    The effect size is ``MDE / baseline_std`` (both arms assumed to share that std). A
    `relative_mde` needs `baseline_mean`. `method` is ``"t"`` (``TTestIndPower``, a little
    conservative for small samples) or ``"normal"`` (``NormalIndPower``). Other arguments as
    in `conversion_sample_size`.
    """
    if not (isinstance(baseline_std, int | float) and baseline_std > 0):
        raise ValueError(
            f"`baseline_std` must be positive. Received: baseline_std={baseline_std!r}"
        )
    if relative_mde is not None and baseline_mean is None:
        raise ValueError(
            "A relative MDE needs the baseline mean to turn it into an absolute difference. "
            f"Received: relative_mde={relative_mde!r}, baseline_mean=None. Fix: pass "
            "baseline_mean=... or absolute_mde=..."
        )
    absolute, relative = _mde(absolute_mde, relative_mde, baseline_mean)
    _check_common(alpha, power, alternative, absolute)
    if method not in _CONTINUOUS_METHODS:
        raise ValueError(f"`method` must be one of {_CONTINUOUS_METHODS}. Received: {method=}")
    control_share, treatment_share = _check_shares(shares)
    ratio = control_share / treatment_share
    sided = "two-sided" if alternative == "two-sided" else "larger"
    power_class = "TTestIndPower" if method == "t" else "NormalIndPower"
    n_treatment = getattr(_deps.sm_power(), power_class)().solve_power(
        effect_size=abs(absolute) / baseline_std,
        alpha=alpha,
        power=power,
        ratio=ratio,
        alternative=sided,
    )
    return _plan(
        "continuous",
        n_treatment,
        ratio,
        baseline_mean,
        float(baseline_std),
        absolute,
        relative,
        alpha,
        power,
        alternative,
        (control_share, treatment_share),
        daily_traffic,
        method,
    )


def _plan(
    metric,
    n_treatment,
    ratio,
    baseline,
    std,
    absolute,
    relative,
    alpha,
    power,
    alternative,
    shares,
    daily_traffic,
    method,
) -> SampleSize:
    n_treatment = float(n_treatment)
    n_t = math.ceil(n_treatment - 1e-9)
    n_c = math.ceil(n_treatment * ratio - 1e-9)
    days = None if daily_traffic is None else duration_days(n_c, n_t, daily_traffic, shares)
    return SampleSize(
        metric=metric,
        n_control=n_c,
        n_treatment=n_t,
        days=days,
        baseline=baseline,
        std=std,
        absolute_mde=float(absolute),
        relative_mde=relative,
        alpha=float(alpha),
        power=float(power),
        alternative=alternative,
        shares=shares,
        daily_traffic=None if daily_traffic is None else float(daily_traffic),
        method=method,
    )


def _mde(absolute, relative, baseline) -> tuple[float, float | None]:
    if (absolute is None) == (relative is None):
        raise ValueError(
            "Give exactly one of `absolute_mde` and `relative_mde`. "
            f"Received: absolute_mde={absolute!r}, relative_mde={relative!r}"
        )
    value, name = (absolute, "absolute_mde") if relative is None else (relative, "relative_mde")
    if not isinstance(value, int | float) or value == 0 or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a non-zero finite number. Received: {name}={value!r}")
    if relative is None:
        return float(absolute), (None if not baseline else float(absolute) / baseline)
    return float(relative) * baseline, float(relative)


def _check_common(alpha, power, alternative, mde) -> None:
    _check_open_unit("alpha", alpha)
    _check_open_unit("power", power)
    if alternative not in ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {ALTERNATIVES}. Received: {alternative=}")
    if (alternative == "larger" and mde < 0) or (alternative == "smaller" and mde > 0):
        raise ValueError(
            f"A one-sided test for a {alternative} treatment cannot detect an MDE of the other "
            f"sign. Received: alternative={alternative!r}, MDE={mde!r}"
        )


def _check_open_unit(name, value) -> None:
    if not (isinstance(value, int | float) and 0 < value < 1):
        raise ValueError(f"`{name}` must be strictly between 0 and 1. Received: {name}={value!r}")


def _check_shares(shares) -> tuple[float, float]:
    try:
        control, treatment = (float(s) for s in shares)
    except (TypeError, ValueError):
        raise ValueError(
            f"`shares` must be (control, treatment) fractions. Received: shares={shares!r}"
        ) from None
    if not (control > 0 and treatment > 0 and control + treatment <= 1 + 1e-9):
        raise ValueError(
            "`shares` must be positive fractions of the traffic summing to at most 1. "
            f"Received: shares={shares!r}"
        )
    return control, treatment

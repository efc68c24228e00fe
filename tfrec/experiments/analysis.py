"""Fixed-horizon analysis of an A/B test: z-test, Welch's t-test, SRM check, peeking guard.

A fixed-horizon p-value is valid only when it is computed once, at the sample size planned
before the test: looking every day and stopping at the first p < 0.05 makes false positives
several times likelier than 5%. The tests here therefore take the plan (``planned=``, a
`tfrec.experiments.design.SampleSize` or per-arm counts) and raise `PeekingError` before both
arms reach it, unless the caller says the look is an interim one (``allow_early=True``). For
continuous monitoring use the always-valid mSPRT in `tfrec.experiments.sequential`.

Every result also checks the observed split against the planned one (sample-ratio mismatch):
a mismatch means the assignment or the logging is broken, and the verdict is then
"SRM: do not trust" whatever the p-value says. Verdicts assume higher is better.

The arithmetic lives in `tfrec.experiments.batch` (vectorised, shared with the simulation);
the tests check it against statsmodels' ``proportions_ztest`` / ``confint_proportions_2indep``
and scipy's ``ttest_ind``.
"""

from __future__ import annotations

import numpy as np

from tfrec.experiments import _deps
from tfrec.experiments.batch import welch_batch, z_test_batch
from tfrec.experiments.design import ALTERNATIVES, SampleSize
from tfrec.experiments.results import ComparisonResult, PeekingError, SrmResult, verdict

__all__ = [
    "ComparisonResult",
    "PeekingError",
    "SrmResult",
    "planned_sizes",
    "proportion_test",
    "srm_check",
    "welch_test",
]


def srm_check(observed, shares, threshold: float = 0.001) -> SrmResult:
    """Chi-square goodness of fit of the arm sizes against the planned split.

    `observed` are the users per arm (a sequence, or a mapping in the order of `shares` when
    both are mappings); `shares` the planned fractions (normalised, so ``(0.05, 0.05)`` means
    an even split of 10% of the traffic). The conventional `threshold` is strict (0.001)
    because with millions of users a real SRM is glaring while tiny p-values by chance are rare.
    """
    if isinstance(shares, dict):
        names = list(shares)
        shares = list(shares.values())
        if isinstance(observed, dict):
            observed = [observed.get(name, 0) for name in names]
    counts = np.asarray(list(observed.values()) if isinstance(observed, dict) else observed)
    weights = np.asarray(shares, dtype=np.float64)
    if counts.shape != weights.shape or counts.ndim != 1 or len(counts) < 2:
        raise ValueError(
            "`observed` and `shares` must give one count and one share per arm. "
            f"Received: observed={observed!r}, shares={shares!r}"
        )
    if (counts < 0).any() or counts.sum() == 0 or (weights <= 0).any():
        raise ValueError(
            "Arm counts must be non-negative with a positive total, shares positive. "
            f"Received: observed={observed!r}, shares={shares!r}"
        )
    expected = counts.sum() * weights / weights.sum()
    statistic, p_value = _deps.scipy_stats().chisquare(counts, expected)
    return SrmResult(
        observed=tuple(int(c) for c in counts),
        expected=tuple(float(e) for e in expected),
        statistic=float(statistic),
        p_value=float(p_value),
        threshold=float(threshold),
    )


def proportion_test(
    conversions_control: int,
    n_control: int,
    conversions_treatment: int,
    n_treatment: int,
    *,
    planned,
    alpha: float | None = None,
    alternative: str | None = None,
    shares=None,
    srm_threshold: float = 0.001,
    allow_early: bool = False,
) -> ComparisonResult:
    """Two-proportion z-test of a conversion metric (users who converted, users per arm).

    Args:
      planned: The plan: a `SampleSize`, an int per arm, ``(n_control, n_treatment)``, or
        ``None`` to state that no size was planned (then nothing is refused). Required so
        that skipping the peeking guard is a deliberate choice.
      alpha, alternative: Default to the plan's, else 0.05 and ``"two-sided"``.
      shares: Planned ``(control, treatment)`` split for the SRM check (default: the plan's;
        no check without either).
      allow_early: Analyse before the planned size anyway (an interim look, not a decision).
    """
    for name, value in (
        ("conversions_control", conversions_control),
        ("n_control", n_control),
        ("conversions_treatment", conversions_treatment),
        ("n_treatment", n_treatment),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    for x, n, arm in (
        (conversions_control, n_control, "control"),
        (conversions_treatment, n_treatment, "treatment"),
    ):
        if n == 0 or x > n:
            raise ValueError(
                f"The {arm} arm needs users and at most one conversion per user. Received: "
                f"conversions_{arm}={x}, n_{arm}={n}"
            )
    alpha, alternative, plan, early, srm = _prepare(
        n_control, n_treatment, planned, alpha, alternative, shares, srm_threshold, allow_early
    )
    out = z_test_batch(
        conversions_control, n_control, conversions_treatment, n_treatment, alpha, alternative
    )
    return _result(
        "two-proportion z-test", out, n_control, n_treatment, alpha, alternative, plan, early, srm
    )


def welch_test(
    control,
    treatment,
    *,
    planned,
    alpha: float | None = None,
    alternative: str | None = None,
    shares=None,
    srm_threshold: float = 0.001,
    allow_early: bool = False,
    test: str = "Welch's t-test",
) -> ComparisonResult:
    """Welch's t-test of a continuous metric from each user's value in each arm.

    Welch's test does not assume equal variances, which a treatment that changes behaviour
    rarely preserves. Arguments as in `proportion_test`.
    """
    values = []
    for name, array in (("control", control), ("treatment", treatment)):
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 1 or array.size < 2 or not np.isfinite(array).all():
            raise ValueError(
                f"`{name}` must be a 1-D array of at least two finite values (one per user). "
                f"Received: {name} with shape {array.shape}"
            )
        values.append(array)
    c, t = values
    alpha, alternative, plan, early, srm = _prepare(
        c.size, t.size, planned, alpha, alternative, shares, srm_threshold, allow_early
    )
    out = welch_batch(
        c.mean(), c.var(ddof=1), c.size, t.mean(), t.var(ddof=1), t.size, alpha, alternative
    )
    return _result(test, out, c.size, t.size, alpha, alternative, plan, early, srm)


def planned_sizes(planned) -> tuple[int, int] | None:
    """``(n_control, n_treatment)`` from a `SampleSize`, an int, a pair, or None."""
    if planned is None:
        return None
    if isinstance(planned, SampleSize):
        return planned.n_control, planned.n_treatment
    if isinstance(planned, int | np.integer) and not isinstance(planned, bool) and planned > 0:
        return int(planned), int(planned)
    if (
        isinstance(planned, tuple | list)
        and len(planned) == 2
        and all(isinstance(p, int | np.integer) and p > 0 for p in planned)
    ):
        return int(planned[0]), int(planned[1])
    raise ValueError(
        "`planned` must be a SampleSize, a positive int per arm, (n_control, n_treatment), or "
        f"None for no plan. Received: planned={planned!r}"
    )


def _prepare(n_c, n_t, planned, alpha, alternative, shares, srm_threshold, allow_early):
    plan = planned_sizes(planned)
    design = planned if isinstance(planned, SampleSize) else None
    alpha = alpha if alpha is not None else (design.alpha if design else 0.05)
    alternative = alternative or (design.alternative if design else "two-sided")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ValueError(f"`alpha` must be strictly between 0 and 1. Received: alpha={alpha!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {ALTERNATIVES}. Received: {alternative=}")
    early = plan is not None and (n_c < plan[0] or n_t < plan[1])
    if early and not allow_early:
        raise PeekingError(
            "Refusing a fixed-horizon test before the planned sample size: control has "
            f"{n_c:,} of {plan[0]:,} users, treatment {n_t:,} of {plan[1]:,}. Stopping at an "
            "early significant look inflates the false positive rate. Received: "
            f"n_control={n_c}, n_treatment={n_t}, planned={plan}. Fix: wait for the plan, "
            "monitor with tfrec.experiments.sequential.msprt, or pass allow_early=True for an "
            "interim look you will not act on."
        )
    shares = shares if shares is not None else (design.shares if design else None)
    srm = None if shares is None else srm_check((n_c, n_t), shares, srm_threshold)
    return float(alpha), alternative, plan, early, srm


def _result(test, out, n_c, n_t, alpha, alternative, plan, early, srm) -> ComparisonResult:
    scalar = {k: float(np.asarray(v)) for k, v in out.items()}
    significant = scalar["p_value"] < alpha
    return ComparisonResult(
        test=test,
        n_control=int(n_c),
        n_treatment=int(n_t),
        control=scalar["control"],
        treatment=scalar["treatment"],
        difference=scalar["difference"],
        ci=(scalar["low"], scalar["high"]),
        lift=scalar["lift"],
        lift_ci=(scalar["lift_low"], scalar["lift_high"]),
        statistic=scalar["statistic"],
        p_value=scalar["p_value"],
        alpha=alpha,
        alternative=alternative,
        planned=plan,
        early=early,
        srm=srm,
        verdict=verdict(significant, scalar["difference"], srm is not None and srm.mismatch),
    )

"""Result records of the A/B test analyses, with readable summaries and verdicts.

They are frozen dataclasses so that a result can be logged, compared and put in a report as
it was computed, and each carries a one-word-ish `verdict` so that dashboards and the
simulation agree on what "the test picked the treatment" means.
"""

from __future__ import annotations

import dataclasses
import math

TREATMENT_BETTER = "treatment better"
TREATMENT_WORSE = "treatment worse"
NO_DIFFERENCE = "no significant difference"
SRM = "SRM: do not trust"


class PeekingError(ValueError):
    """Raised when a fixed-horizon test is asked for a verdict before its planned size.

    A subclass of ``ValueError`` so that callers who treat bad input uniformly still catch it,
    and a class of its own so that a dashboard can show "not yet" instead of an error.
    """


def verdict(significant: bool, difference: float, srm: bool) -> str:
    """The verdict of a two-arm comparison (higher is better); an SRM overrides everything."""
    if srm:
        return SRM
    if not significant:
        return NO_DIFFERENCE
    return TREATMENT_BETTER if difference > 0 else TREATMENT_WORSE


@dataclasses.dataclass(frozen=True)
class SrmResult:
    """A sample-ratio-mismatch check: are the arm sizes what the planned split predicts?

    A mismatch (``p_value < threshold``) means users were lost or duplicated unevenly
    (assignment, redirects, logging), so any difference between the arms may be an artefact.
    """

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        """True when the split is too far from the plan to trust the test."""
        return self.p_value < self.threshold

    def __str__(self) -> str:
        observed = " / ".join(f"{n:,}" for n in self.observed)
        expected = " / ".join(f"{e:,.0f}" for e in self.expected)
        state = "MISMATCH" if self.mismatch else "ok"
        return (
            f"SRM check {state}: observed {observed} vs expected {expected} "
            f"(chi2 {self.statistic:.3f}, p {self.p_value:.3g}, threshold {self.threshold:g})"
        )


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """A fixed-horizon comparison of treatment against control.

    `control` and `treatment` are rates or means, `difference` = treatment - control with its
    confidence interval `ci`, `lift` = treatment / control - 1 with `lift_ci`. `early` is True
    for an interim look made with ``allow_early=True`` (its p-value is not a valid decision
    rule); `srm` is the sample-ratio check when a split was planned.
    """

    test: str
    n_control: int
    n_treatment: int
    control: float
    treatment: float
    difference: float
    ci: tuple[float, float]
    lift: float
    lift_ci: tuple[float, float]
    statistic: float
    p_value: float
    alpha: float
    alternative: str
    planned: tuple[int, int] | None
    early: bool
    srm: SrmResult | None
    verdict: str

    @property
    def significant(self) -> bool:
        """p-value below alpha (regardless of SRM or earliness; see `verdict`)."""
        return self.p_value < self.alpha

    def summary(self) -> str:
        """A few lines for a log or a notebook."""
        level = f"{1 - self.alpha:.0%}" + ("" if self.alternative == "two-sided" else " one-sided")
        lines = [
            f"{self.test} ({self.alternative}, alpha {self.alpha:g}): verdict: {self.verdict}",
            f"  control   {self.control:.5g} (n={self.n_control:,})",
            f"  treatment {self.treatment:.5g} (n={self.n_treatment:,})",
            f"  difference {self.difference:+.5g}, {level} CI {_bounds(self.ci, '.5g')}",
            f"  lift {self.lift:+.2%}, {level} CI {_bounds(self.lift_ci, '+.2%')}",
            f"  statistic {self.statistic:.4g}, p-value {self.p_value:.4g}",
        ]
        if self.planned is not None:
            state = "INTERIM LOOK, not a decision" if self.early else "reached"
            lines.append(f"  planned {self.planned[0]:,} / {self.planned[1]:,} per arm: {state}")
        if self.srm is not None:
            lines.append(f"  {self.srm}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _bounds(interval, spec: str) -> str:
    def one(value):
        return ("-inf" if value < 0 else "+inf") if math.isinf(value) else format(value, spec)

    return f"[{one(interval[0])}, {one(interval[1])}]"


@dataclasses.dataclass(frozen=True)
class PowerEstimate:
    """How often simulated tests at a planned size picked each arm, against the truth.

    `picked_treatment` / `picked_control` are the fractions of the `reps` tests that were
    significant (and passed the SRM check) in favour of that arm. `better` is 1 when the
    treatment is truly better, -1 when the control is, 0 when they are the same recommender:
    then every pick is a false positive.
    """

    reps: int
    planned: tuple[int, int]
    alpha: float
    alternative: str
    metric: str
    true_control: float
    true_treatment: float
    picked_treatment: float
    picked_control: float
    srm_rate: float
    mean_users: float
    better: int

    @property
    def significant(self) -> float:
        """Fraction of tests that declared any winner."""
        return self.picked_treatment + self.picked_control

    @property
    def power(self) -> float:
        """Fraction of tests that picked the truly better arm (NaN when the arms are equal)."""
        if self.better == 0:
            return math.nan
        return self.picked_treatment if self.better > 0 else self.picked_control

    @property
    def false_positive_rate(self) -> float:
        """Fraction of tests that declared a winner wrongly: any winner between equal arms,
        the worse arm otherwise."""
        if self.better == 0:
            return self.significant
        return self.picked_control if self.better > 0 else self.picked_treatment

    def standard_error(self, rate: float) -> float:
        """Monte-Carlo standard error of a fraction estimated from `reps` tests."""
        return math.sqrt(max(rate * (1 - rate), 0.0) / self.reps)

    def __str__(self) -> str:
        truth = (
            f"true {self.metric} {self.true_control:.5g} (control) vs "
            f"{self.true_treatment:.5g} (treatment)"
        )
        head = (
            f"{self.reps} simulated tests at {self.planned[0]:,} / {self.planned[1]:,} "
            f"users per arm (alpha {self.alpha:g}, {self.alternative}); {truth}"
        )
        fpr = self.false_positive_rate
        lines = [head]
        if self.better != 0:
            lines.append(
                f"  power (picked the better arm): {self.power:.3f} "
                f"+- {self.standard_error(self.power):.3f}"
            )
        lines.append(
            f"  false positives: {fpr:.3f} +- {self.standard_error(fpr):.3f}; "
            f"SRM flagged in {self.srm_rate:.1%}; {self.mean_users:,.0f} users per test"
        )
        return "\n".join(lines)

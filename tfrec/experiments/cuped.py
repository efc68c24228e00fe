"""CUPED: shrinking an A/B test's variance with each user's pre-experiment behaviour.

Much of the spread of a metric between users is who they are, not what the variant did: a
heavy user clicks more in both arms. CUPED (Deng, Xu, Kohavi & Walker, WSDM 2013) subtracts
the part of the metric that a pre-period covariate ``x`` (the same metric over the weeks
before the test) predicts: ``y_adj = y - theta * (x - mean(x))`` with
``theta = cov(x, y) / var(x)``. Because assignment is random, ``x`` has the same mean in both
arms, so the adjusted difference estimates the same effect with variance reduced by about
``corr(x, y)^2``: the same test needs proportionally fewer users.

``theta`` is estimated on both arms pooled (and ``x`` centred on the pooled mean), so the
adjustment is identical in both arms and does not depend on the treatment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec.experiments.analysis import welch_test
from tfrec.experiments.results import ComparisonResult


@dataclasses.dataclass(frozen=True)
class CupedResult:
    """The raw and the CUPED-adjusted Welch comparisons, `theta` and the variance reduction.

    `variance_reduction` is ``1 - Var(adjusted difference) / Var(raw difference)`` as
    estimated from the samples (0.3 means the adjusted test is as precise as the raw one
    with 1 / 0.7 times the users). The `verdict` is the adjusted test's.
    """

    theta: float
    variance_reduction: float
    raw: ComparisonResult
    adjusted: ComparisonResult

    @property
    def verdict(self) -> str:
        """The adjusted comparison's verdict."""
        return self.adjusted.verdict

    def summary(self) -> str:
        """The adjusted test, then what CUPED changed."""
        return (
            f"{self.adjusted.summary()}\n  CUPED theta {self.theta:.4g}: variance of the "
            f"difference reduced by {self.variance_reduction:.1%} (raw difference "
            f"{self.raw.difference:+.5g}, p {self.raw.p_value:.4g})"
        )

    def __str__(self) -> str:
        return self.summary()


def cuped_theta(y, x) -> float:
    """``cov(x, y) / var(x)``: the regression slope of the metric on the covariate."""
    y, x = _pair(y, x, "y", "x")
    variance = x.var()
    if variance == 0:
        raise ValueError(
            "The covariate `x` is constant, so it cannot explain any variance. Received: "
            f"x with variance 0 over {x.size} users. Fix: use a pre-period metric that varies."
        )
    return float(np.mean((x - x.mean()) * (y - y.mean())) / variance)


def cuped_adjust(y, x, theta: float, x_mean: float) -> np.ndarray:
    """``y - theta * (x - x_mean)``; use the same `theta` and `x_mean` for every arm."""
    y, x = _pair(y, x, "y", "x")
    return y - theta * (x - x_mean)


def cuped_test(y_control, x_control, y_treatment, x_treatment, *, planned, **kwargs) -> CupedResult:
    """Welch's t-test on CUPED-adjusted values, beside the raw test.

    Args:
      y_control, y_treatment: The metric per user during the test, in each arm.
      x_control, x_treatment: The same users' pre-period covariate (0 for users without
        history is fine: CUPED stays unbiased, it just helps less).
      planned: As in `tfrec.experiments.analysis.welch_test`; keyword arguments go there too.
    """
    yc, xc = _pair(y_control, x_control, "y_control", "x_control")
    yt, xt = _pair(y_treatment, x_treatment, "y_treatment", "x_treatment")
    y_all, x_all = np.concatenate([yc, yt]), np.concatenate([xc, xt])
    theta = cuped_theta(y_all, x_all)
    x_mean = float(x_all.mean())
    adjusted_c = cuped_adjust(yc, xc, theta, x_mean)
    adjusted_t = cuped_adjust(yt, xt, theta, x_mean)
    raw = welch_test(yc, yt, planned=planned, **kwargs)
    adjusted = welch_test(
        adjusted_c, adjusted_t, planned=planned, test="Welch's t-test (CUPED)", **kwargs
    )
    raw_var = yc.var(ddof=1) / yc.size + yt.var(ddof=1) / yt.size
    adjusted_var = adjusted_c.var(ddof=1) / yc.size + adjusted_t.var(ddof=1) / yt.size
    reduction = 1.0 - adjusted_var / raw_var if raw_var > 0 else 0.0
    return CupedResult(theta=theta, variance_reduction=float(reduction), raw=raw, adjusted=adjusted)


def _pair(y, x, y_name, x_name):
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if y.ndim != 1 or y.shape != x.shape or not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError(
            f"`{y_name}` and `{x_name}` must be 1-D finite arrays of the same length (one value "
            f"per user). Received: {y_name} with shape {y.shape}, {x_name} with shape {x.shape}"
        )
    return y, x

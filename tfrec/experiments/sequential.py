"""Always-valid inference for A/B tests that are watched while they run (mSPRT).

Teams look at running tests every day; a fixed-horizon p-value read that way rejects a true
null far more often than alpha. The mixture sequential probability ratio test (Robbins 1970;
Johari, Pekelis & Walsh, "Always valid inference: bringing sequential analysis to A/B
testing", arXiv:1512.04922, 2017; Johari, Koomen, Pekelis & Walsh, "Always valid inference:
continuous monitoring of A/B tests", Operations Research 70(3), 2022) gives p-values and
confidence sequences that stay valid however often, and whenever, one looks and stops.

For the difference of means ``delta`` between treatment and control, with estimate ``d`` and
its variance ``V = var_t / n_t + var_c / n_c`` at a look, and a normal mixing prior
``N(theta0, tau^2)`` on the effect, the mixture likelihood ratio is::

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (d - theta0)^2 / (2 V (V + tau^2)))

The always-valid p-value is the running minimum of ``min(1, 1 / Lambda)``; the confidence
sequence ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1 / alpha) + log((V + tau^2) / V)))`` is
intersected over looks. This is Johari et al.'s two-stream statistic with plug-in variances
(exact for Gaussian data of known variance, asymptotic for conversions); ``tau`` of the
order of the effects one expects (e.g. the design's MDE) gives the shortest tests.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec.experiments.results import NO_DIFFERENCE, verdict


@dataclasses.dataclass(frozen=True)
class SequentialResult:
    """An mSPRT run: per look, the estimate, the always-valid p-value and the interval.

    Unlike a fixed-horizon test, it may be read at every look and the test stopped as soon
    as `p_values` drops below `alpha`; `stopped_at` is that look (None if it never did), and
    the `verdict` is taken there.
    """

    n_control: np.ndarray
    n_treatment: np.ndarray
    difference: np.ndarray
    p_values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    tau: float
    alpha: float

    @property
    def stopped_at(self) -> int | None:
        """Index of the first look whose always-valid p-value is below alpha."""
        below = np.flatnonzero(self.p_values < self.alpha)
        return int(below[0]) if below.size else None

    @property
    def p_value(self) -> float:
        """The always-valid p-value at the last look."""
        return float(self.p_values[-1])

    @property
    def verdict(self) -> str:
        """The verdict at the stopping look (higher is better), or no significant difference."""
        look = self.stopped_at
        if look is None:
            return NO_DIFFERENCE
        return verdict(True, float(self.difference[look]), srm=False)

    def summary(self) -> str:
        """Where the test stands (or stopped) and its confidence sequence."""
        look = self.stopped_at if self.stopped_at is not None else len(self.p_values) - 1
        state = "stopped" if self.stopped_at is not None else "last look, not stopped"
        return (
            f"mSPRT (tau {self.tau:.4g}, alpha {self.alpha:g}): verdict: {self.verdict}\n"
            f"  {state} at look {look + 1} of {len(self.p_values)}: "
            f"n {int(self.n_control[look]):,} / {int(self.n_treatment[look]):,}, difference "
            f"{self.difference[look]:+.5g}, always-valid p {self.p_values[look]:.4g}, "
            f"{1 - self.alpha:.0%} confidence sequence [{self.lower[look]:.5g}, "
            f"{self.upper[look]:.5g}]"
        )

    def __str__(self) -> str:
        return self.summary()


def msprt_batch(
    difference, variance, tau: float, alpha: float = 0.05, theta0: float = 0.0, valid=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Always-valid p-values and confidence sequence bounds over looks (the last axis).

    `difference` and `variance` (of the difference) have shape ``[..., looks]``; leading axes
    are independent experiments. Looks where `valid` is False (too few users for a variance
    estimate) give p = 1 and an unbounded interval. Returns ``(p_values, lower, upper)``.
    """
    if not (isinstance(tau, float | int) and tau > 0):
        raise ValueError(f"`tau` (mixing prior std) must be positive. Received: tau={tau!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be strictly between 0 and 1. Received: alpha={alpha!r}")
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    v = np.where(ok, v, 1.0)
    tau2 = float(tau) ** 2
    with np.errstate(over="ignore"):
        log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * (d - theta0) ** 2 / (2 * v * (v + tau2))
    p = np.where(ok, np.minimum(1.0, np.exp(-log_lambda)), 1.0)
    half = np.sqrt(v * (v + tau2) / tau2 * (2 * np.log(1 / alpha) + np.log((v + tau2) / v)))
    lower = np.where(ok, d - half, -np.inf)
    upper = np.where(ok, d + half, np.inf)
    return (
        np.minimum.accumulate(p, axis=-1),
        np.maximum.accumulate(lower, axis=-1),
        np.minimum.accumulate(upper, axis=-1),
    )


def msprt(
    n_control,
    mean_control,
    var_control,
    n_treatment,
    mean_treatment,
    var_treatment,
    *,
    tau: float,
    alpha: float = 0.05,
    theta0: float = 0.0,
    min_n: int = 100,
) -> SequentialResult:
    """mSPRT from each arm's cumulative size, mean and variance at every look (1-D arrays).

    Looks where an arm has fewer than `min_n` users are skipped (p = 1): plug-in variances
    from a handful of users are too noisy for the asymptotic guarantee.
    """
    arrays = [
        np.atleast_1d(np.asarray(a, dtype=np.float64))
        for a in (n_control, mean_control, var_control, n_treatment, mean_treatment, var_treatment)
    ]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            "Per-look arrays must all be 1-D with one entry per look. Received shapes: "
            f"{[a.shape for a in arrays]}"
        )
    nc, mc, vc, nt, mt, vt = arrays
    if np.any(np.diff(nc) < 0) or np.any(np.diff(nt) < 0):
        raise ValueError("Looks must be in time order: arm sizes cannot decrease.")
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = vc / nc + vt / nt
    p, lower, upper = msprt_batch(
        mt - mc, variance, tau, alpha, theta0, valid=(nc >= min_n) & (nt >= min_n)
    )
    return SequentialResult(
        n_control=nc,
        n_treatment=nt,
        difference=mt - mc,
        p_values=p,
        lower=lower,
        upper=upper,
        tau=float(tau),
        alpha=float(alpha),
    )


def msprt_from_observations(
    values,
    is_treatment,
    *,
    tau: float,
    looks=100,
    alpha: float = 0.05,
    theta0: float = 0.0,
    min_n: int = 100,
) -> SequentialResult:
    """mSPRT over a stream of per-user outcomes in arrival order (vectorised cumulative sums).

    Args:
      values: Each user's outcome (a 0/1 conversion or a continuous metric), in arrival order.
      is_treatment: Each user's arm (True for treatment), same order.
      looks: The number of equally spaced looks, or the stream positions (users seen so far)
        at which to look.
    """
    y = np.asarray(values, dtype=np.float64)
    arm = np.asarray(is_treatment, dtype=bool)
    if y.ndim != 1 or arm.shape != y.shape or not np.isfinite(y).all():
        raise ValueError(
            "`values` and `is_treatment` must be 1-D of the same length, values finite. "
            f"Received shapes: values {y.shape}, is_treatment {arm.shape}"
        )
    if np.isscalar(looks):
        positions = np.unique(np.linspace(0, y.size, int(looks) + 1)[1:].round().astype(int))
    else:
        positions = np.asarray(looks, dtype=int)
    if positions.size == 0 or positions.min() < 1 or positions.max() > y.size:
        raise ValueError(f"`looks` must lie in [1, {y.size}]. Received: looks={looks!r}")
    centred = y - y.mean()  # variances are shift-invariant; centring avoids cancellation
    stats = []
    for mask in (~arm, arm):
        n = np.cumsum(mask)[positions - 1].astype(np.float64)
        s1 = np.cumsum(np.where(mask, centred, 0.0))[positions - 1]
        s2 = np.cumsum(np.where(mask, centred**2, 0.0))[positions - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s1 / n
            var = np.maximum(s2 - n * mean**2, 0.0) / (n - 1)
        stats.append((n, mean + y.mean(), var))
    (nc, mc, vc), (nt, mt, vt) = stats
    return msprt(nc, mc, vc, nt, mt, vt, tau=tau, alpha=alpha, theta0=theta0, min_n=min_n)

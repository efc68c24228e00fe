"""Vectorised two-sample tests over many experiments at once (the analysis' arithmetic).

`tfrec.experiments.analysis` runs them on one experiment and wraps the numbers in a result;
the simulation runs them on thousands of simulated experiments in one call. The statistics
are arithmetic on arrays; distributions and p-values come from ``scipy.stats``.
"""

from __future__ import annotations

import math

import numpy as np

from tfrec.experiments import _deps

_SCIPY_ALTERNATIVE = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}


def z_test_batch(
    x_control, n_control, x_treatment, n_treatment, alpha=0.05, alternative="two-sided"
) -> dict[str, np.ndarray]:
    """Two-proportion z-tests over arrays of experiments (conversions ``x``, users ``n``).

    The statistic uses the pooled rate (as statsmodels' ``proportions_ztest``); the interval
    for the difference is Wald's (unpooled), the one for the lift (rate ratio - 1) Katz's log
    interval. One-sided alternatives give one-sided intervals. Returns arrays keyed
    ``control, treatment, difference, low, high, lift, lift_low, lift_high, statistic, p_value``.
    """
    norm = _deps.scipy_stats().norm
    xc, nc, xt, nt = (
        np.asarray(a, dtype=np.float64) for a in (x_control, n_control, x_treatment, n_treatment)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pc, pt = xc / nc, xt / nt
        pooled = (xc + xt) / (nc + nt)
        se_null = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
        z = np.where(se_null > 0, (pt - pc) / se_null, 0.0)
        se = np.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
        se_log = np.sqrt((1 - pt) / xt + (1 - pc) / xc)
        log_ratio = np.log(pt / pc)
    out = {
        "control": pc,
        "treatment": pt,
        "difference": pt - pc,
        "statistic": z,
        "p_value": _p_value(norm, z, alternative),
    }
    out["low"], out["high"] = _interval(pt - pc, se, norm.ppf, alpha, alternative)
    low, high = _interval(log_ratio, se_log, norm.ppf, alpha, alternative)
    with np.errstate(divide="ignore", invalid="ignore"):  # no control conversions: NaN lift
        out["lift"] = pt / pc - 1
    out["lift_low"], out["lift_high"] = np.exp(low) - 1, np.exp(high) - 1
    return out


def welch_batch(
    mean_control,
    var_control,
    n_control,
    mean_treatment,
    var_treatment,
    n_treatment,
    alpha=0.05,
    alternative="two-sided",
) -> dict[str, np.ndarray]:
    """Welch's t-tests over arrays of experiments, from per-arm means, variances (ddof=1), n.

    p-values are scipy's ``ttest_ind_from_stats(equal_var=False)``; the interval for the
    difference uses the Welch-Satterthwaite degrees of freedom, the one for the lift
    (``treatment / control - 1``) the delta method. Keys as in `z_test_batch`, plus ``df``.
    """
    stats = _deps.scipy_stats()
    mc, vc, nc, mt, vt, nt = (
        np.asarray(a, dtype=np.float64)
        for a in (mean_control, var_control, n_control, mean_treatment, var_treatment, n_treatment)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ec, et = vc / nc, vt / nt
        se = np.sqrt(ec + et)
        df = (ec + et) ** 2 / (ec**2 / (nc - 1) + et**2 / (nt - 1))
        t, p = stats.ttest_ind_from_stats(
            mt,
            np.sqrt(vt),
            nt,
            mc,
            np.sqrt(vc),
            nc,
            equal_var=False,
            alternative=_SCIPY_ALTERNATIVE[alternative],
        )
        lift_se = np.sqrt(et / mc**2 + mt**2 * ec / mc**4)
    out = {
        "control": mc,
        "treatment": mt,
        "difference": mt - mc,
        "statistic": np.asarray(t),
        "p_value": np.asarray(p),
        "df": df,
        "lift": mt / mc - 1,
    }
    out["low"], out["high"] = _interval(
        mt - mc, se, lambda q: stats.t.ppf(q, df), alpha, alternative
    )
    out["lift_low"], out["lift_high"] = _interval(
        out["lift"], lift_se, stats.norm.ppf, alpha, alternative
    )
    return out


def _p_value(norm, z, alternative):
    if alternative == "two-sided":
        return 2 * norm.sf(np.abs(z))
    return norm.sf(z) if alternative == "larger" else norm.cdf(z)


def _interval(estimate, se, ppf, alpha, alternative):
    """Two-sided at 1 - alpha, or one-sided (the other bound infinite) for one-sided tests."""
    quantile = ppf(1 - alpha / 2) if alternative == "two-sided" else ppf(1 - alpha)
    low, high = estimate - quantile * se, estimate + quantile * se
    if alternative == "larger":
        high = np.full_like(np.asarray(high, dtype=np.float64), math.inf)
    elif alternative == "smaller":
        low = np.full_like(np.asarray(low, dtype=np.float64), -math.inf)
    return low, high

"""Paired bootstrap confidence intervals for the difference of two recommenders' metrics.

Why this exists: "B's HR@10 is 0.012 higher than A's" means nothing until it is set against
how much it moves from one sample of users to another. Both models are judged on the *same*
held-out users, so the honest interval resamples users (with replacement) and recomputes the
*paired* difference on each resample: user-level noise common to both models cancels, which
makes the paired interval far narrower than two separate ones. Every leave-one-out metric is a
mean over target rows of a per-row value (`per_row_metrics`); a user with several targets (a
chronological split) is resampled with all of them, and the metric stays the row mean.

Resampling is vectorised: blocks of ``(reps, users)`` indices drawn with
``np.random.default_rng(seed).integers``, and per-user sums gathered at once. The interval is
the percentile interval; the p-value is the two-sided bootstrap one,
``2 * min(P*(d <= 0), P*(d >= 0))``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_BLOCK = 1 << 22
"""Resampled indices per block (reps x users), so memory stays bounded for any size."""


def per_row_metrics(ranks, ks=(10,), depth: int | None = None) -> dict[str, np.ndarray]:
    """Each target row's value of every metric `metrics_from_ranks` reports (their means are
    its numbers): hr@k, ndcg@k, recall@k, precision@k, map@k and mrr.

    With `depth` (ranks only known below it, e.g. from a top-`depth` list), the reciprocal
    rank is truncated there and reported as ``mrr@<depth>``.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or not np.issubdtype(ranks.dtype, np.integer) or (ranks < 0).any():
        raise ValueError(
            f"ranks must be a 1-D array of non-negative integers. Received: shape="
            f"{ranks.shape}, dtype={ranks.dtype}"
        )
    ranks = ranks.astype(np.float64)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
        out[f"recall@{k}"] = out[f"hr@{k}"]
        out[f"precision@{k}"] = out[f"hr@{k}"] / k
        out[f"map@{k}"] = np.where(hit, 1.0 / (ranks + 1.0), 0.0)
    if depth is None:
        out["mrr"] = 1.0 / (ranks + 1.0)
    else:
        out[f"mrr@{depth}"] = np.where(ranks < depth, 1.0 / (ranks + 1.0), 0.0)
    return out


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """B minus A on one metric, with its paired bootstrap interval.

    Attributes:
      a, b: Each model's metric (the mean over rows).
      difference: ``b - a``.
      low, high: The percentile interval of the difference at `confidence`.
      p_value: Two-sided bootstrap p-value of "no difference".
      confidence: The interval's coverage, e.g. 0.95.
      reps: Bootstrap resamples.
    """

    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    reps: int

    @property
    def verdict(self) -> str:
        """ "B better", "A better" or "no difference" (whether the interval excludes 0)."""
        if self.low > 0:
            return "B better"
        if self.high < 0:
            return "A better"
        return "no difference"


def _groups(groups, size: int) -> tuple[np.ndarray, int]:
    groups = np.asarray(groups)
    if groups.shape != (size,):
        raise ValueError(
            f"`groups` needs one resampling unit (user) per row. Received: groups.shape="
            f"{groups.shape}, rows={size}"
        )
    _, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if size else 0


def bootstrap_differences(a, b, groups, reps: int = 2000, seed: int = 0) -> np.ndarray:
    """`reps` bootstrap replicates of ``mean(b - a)`` with `groups` (users) resampled.

    Replicate r draws ``G`` groups with replacement and takes the row mean over their rows:
    ``sum_g n_rg * sum(b - a in g) / sum_g n_rg * rows(g)``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            "`a` and `b` must be 1-D per-row values of the same rows. Received: shapes "
            f"{a.shape} and {b.shape}"
        )
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ValueError(f"`reps` must be a positive integer. Received: reps={reps!r}")
    inverse, count = _groups(groups, a.size)
    sums = np.bincount(inverse, weights=b - a, minlength=count)
    rows = np.bincount(inverse, minlength=count).astype(np.float64)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // count)
    out = []
    for start in range(0, reps, block):
        index = rng.integers(0, count, size=(min(block, reps - start), count))
        out.append(sums[index].sum(axis=1) / rows[index].sum(axis=1))
    return np.concatenate(out)


def paired_difference(a, b, groups, reps: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> PairedDifference:  # fmt: skip
    """B minus A (per-row values `a`, `b` of the same rows) with a paired bootstrap interval
    over `groups` (each row's user). See the module docstring."""
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1). Received: confidence={confidence!r}")
    replicates = bootstrap_differences(a, b, groups, reps, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    p_value = min(1.0, 2 * min(np.mean(replicates <= 0), np.mean(replicates >= 0)))
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    return PairedDifference(
        a=mean_a, b=mean_b, difference=mean_b - mean_a, low=float(low), high=float(high),
        p_value=float(p_value), confidence=float(confidence), reps=int(reps),
    )  # fmt: skip


def compare_rows(rows_a: dict, rows_b: dict, groups, reps: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> dict[str, PairedDifference]:  # fmt: skip
    """`paired_difference` of every metric the two per-row dicts share (same seed each, so
    every metric sees the same resampled users)."""
    shared = [name for name in rows_a if name in rows_b]
    if not shared:
        raise ValueError(
            f"The two evaluations share no metric. Received: {sorted(rows_a)} and {sorted(rows_b)}"
        )
    return {
        name: paired_difference(rows_a[name], rows_b[name], groups, reps, confidence, seed)
        for name in shared
    }

"""Judging exports offline: an export's metrics on a split, and two exports compared with CIs.

Why this exists: what goes to production is the export, not the Keras model, so the export is
what must be judged, through the very signatures TF Serving runs, with the library's metrics:

* full ranking from ``recommend``: each held-out user's top-`depth` list (seen items already
  left out by the export) gives each target's rank; with `depth` = the whole catalogue (the
  default) the ranks are exact and every metric equals `tfrec.evaluation.evaluate`'s, up to
  ties (a tie is resolved by the export's top-k order, not against the model). With a smaller
  `depth`, metrics at k <= depth are exact and MRR is truncated (reported as
  ``full_mrr@<depth>``). A target the export never recommends (it thinks it seen, or does not
  have the movie) gets no rank: a miss at every k, 0 reciprocal rank.
* sampled ranking from ``serving_default``: the target's pair score against the same
  `num_negatives` negatives `tfrec.evaluation` draws (same sampler, seed and exclusions).

A held-out export (``export_model(..., as_of="test")``) knows what the model was trained and
validated on and nothing later, so judged on "test" it reproduces `evaluate_model`. Judging an
export on interactions it already knows is meaningless (they are excluded as seen): the export
records its ``as_of`` and a warning says so. `compare_exports` judges two exports on the same
held-out rows and puts a paired bootstrap interval on every metric difference.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from tfrec.data.sampling import NegativeSampler
from tfrec.data.splitdata import SplitData
from tfrec.evaluation.bootstrap import PairedDifference, compare_rows, per_row_metrics
from tfrec.evaluation.metrics import rank_of_targets
from tfrec.evaluation.protocols import format_table, metrics_from_ranks, usable_negatives
from tfrec.serving.served import ServedExport

UNRANKED = np.iinfo(np.int32).max
"""Rank given to a target the export did not recommend at all."""
PAIRS_PER_CALL = 1 << 18
"""Items returned per ``recommend`` call (users per call = this // depth)."""


@dataclasses.dataclass
class ExportEvaluation:
    """An export's metrics on a split, and the per-row ranks they come from.

    Attributes:
      path: The SavedModel judged.
      split: "valid" or "test".
      metrics: Flat ``{"<protocol>_<metric>": value}`` as `tfrec.evaluation.evaluate`.
      users: User index of each held-out row (the bootstrap's resampling unit).
      ranks: ``{protocol: 0-based rank of each row's target}``.
      depth: Length of the ``recommend`` lists full ranking read (None without "full").
      truncated: Whether `depth` was shorter than the export's catalogue.
      unranked: Targets the export's full lists never contained.
    """

    path: str
    split: str
    metrics: dict
    users: np.ndarray
    ranks: dict
    depth: int | None
    truncated: bool
    unranked: int
    ks: tuple

    def rows(self) -> dict[str, np.ndarray]:
        """Per-row metric values keyed like `metrics` (their means are the metrics)."""
        out = {}
        for protocol, ranks in self.ranks.items():
            depth = self.depth if protocol == "full" and self.truncated else None
            for name, values in per_row_metrics(ranks, self.ks, depth).items():
                out[f"{protocol}_{name}"] = values
        return out


def _as_served(export) -> ServedExport:
    return export if isinstance(export, ServedExport) else ServedExport(export)


def _check_as_of(served: ServedExport, split: str) -> None:
    known = served.as_of
    if known is None or known == split:
        return
    if known == "all":
        why = "it knows every rating, so the held-out targets are excluded as seen"
    else:
        why = f"it knows what is known at {known!r}, not at {split!r}"
    warnings.warn(
        f"The export at {served.path} was exported with as_of={known!r} but is judged on "
        f"{split!r}: {why}, and its metrics are not the evaluator's. Fix: export it with "
        f"as_of={split!r} (`tfrec export --as-of {split}`).",
        stacklevel=3,
    )


def _item_index(item_ids: np.ndarray):
    order = np.argsort(item_ids, kind="stable")
    ordered = item_ids[order]

    def index(ids: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(ordered, ids), ordered.size - 1)
        return np.where(ordered[pos] == ids, order[pos], -1)

    return index


def _full_ranks(served, data, users, targets, depth, progress) -> np.ndarray:
    """Each row's target rank in its user's top-`depth` list (`UNRANKED` if absent)."""
    index = _item_index(np.asarray(data.item_ids).astype(str))
    distinct = np.unique(users)
    order = np.argsort(np.searchsorted(distinct, users), kind="stable")
    position = np.searchsorted(distinct, users[order])
    ranks = np.full(users.size, UNRANKED, np.int64)
    step = max(1, PAIRS_PER_CALL // depth)
    starts = range(0, distinct.size, step)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="recommend", unit="batch")
    user_ids = np.asarray(data.user_ids).astype(str)
    for start in starts:
        block = distinct[start : start + step]
        ids, _, _ = served.recommend(user_ids[block], depth)
        items = index(ids)
        where = np.full((block.size, data.num_items), UNRANKED, np.int64)
        r, c = np.nonzero(items >= 0)
        where[r, items[r, c]] = c
        lo, hi = np.searchsorted(position, [start, start + block.size])
        rows = order[lo:hi]
        ranks[rows] = where[position[lo:hi] - start, targets[rows]]
    return ranks


def _sampled_ranks(served, data, split, users, targets, num_negatives, distribution,
                   item_counts, seed) -> np.ndarray:  # fmt: skip
    seen = data.seen(split)
    num_negatives = usable_negatives(seen, users, data.num_items, num_negatives, stacklevel=3)
    sampler = NegativeSampler(seen, distribution, item_counts=item_counts, seed=seed)
    user_ids = np.asarray(data.user_ids).astype(str)
    item_ids = np.asarray(data.item_ids).astype(str)
    ranks = []
    for start in range(0, users.size, 1024):
        batch_users, batch_targets = users[start : start + 1024], targets[start : start + 1024]
        negatives = sampler.sample_distinct(batch_users, batch_targets, num_negatives)
        items = np.concatenate([batch_targets[:, None], negatives], axis=1)
        scores = served.score_pairs(
            np.repeat(user_ids[batch_users], items.shape[1]), item_ids[items].reshape(-1)
        ).reshape(items.shape)
        ranks.append(rank_of_targets(scores, np.zeros(batch_users.size, np.int64)))
    return np.concatenate(ranks)


def evaluate_export(export, data: SplitData, split: str = "test", ks=(10,),
                    protocols=("sampled", "full"), *, depth: int | None = None,
                    num_negatives: int = 99, distribution: str = "uniform", item_counts=None,
                    seed: int = 0, progress: bool = False) -> ExportEvaluation:  # fmt: skip
    """Judges an export on `data`'s `split` through its signatures (module docstring).

    Args:
      export: A SavedModel path (version or model directory) or a `ServedExport`.
      data: The `SplitData` whose held-out rows are judged (ids are matched by value).
      split: "valid" or "test".
      ks: Cut-offs.
      protocols: Any of "sampled" (``serving_default``) and "full" (``recommend``).
      depth: List length read from ``recommend`` (default: the export's whole catalogue).
      num_negatives, distribution, item_counts, seed: Sampled ranking, as in `evaluate`.
      progress: Show a progress bar over ``recommend`` calls.
    """
    served = _as_served(export)
    unknown = sorted(set(protocols) - {"sampled", "full"})
    if unknown or not protocols:
        raise ValueError(
            f"protocols must be a non-empty subset of ('sampled', 'full'). Received: {protocols!r}"
        )
    users, targets = data.targets(split)
    ks = tuple(int(k) for k in ks)
    _check_as_of(served, split)
    metrics, ranks = {}, {}
    catalogue = served.catalogue_size or data.num_items
    truncated, unranked = False, 0
    if "full" not in protocols:
        depth = None
    else:
        depth = catalogue if depth is None else int(depth)
        if depth < max(ks) or depth < 1:
            raise ValueError(
                f"`depth` must be at least the largest cut-off {max(ks)}. Received: "
                f"depth={depth}. Fix: pass depth >= {max(ks)} (or None for the whole catalogue)."
            )
        depth = min(depth, catalogue)
        truncated = depth < catalogue
        ranks["full"] = _full_ranks(served, data, users, targets, depth, progress)
        unranked = int((ranks["full"] == UNRANKED).sum())
        full = metrics_from_ranks(ranks["full"], ks)
        if truncated:
            full.pop("mrr")
            full[f"mrr@{depth}"] = float(
                per_row_metrics(ranks["full"], (), depth)[f"mrr@{depth}"].mean()
            )
        metrics.update({f"full_{k}": v for k, v in full.items()})
    if "sampled" in protocols:
        ranks["sampled"] = _sampled_ranks(
            served, data, split, users, targets, num_negatives, distribution, item_counts, seed
        )
        sampled = metrics_from_ranks(ranks["sampled"], ks)
        metrics = {**{f"sampled_{k}": v for k, v in sampled.items()}, **metrics}
    return ExportEvaluation(
        str(served.path), split, metrics, users, ranks, depth, truncated, unranked, ks
    )


@dataclasses.dataclass
class ExportComparison:
    """Two exports judged on the same held-out rows, and B - A per metric with its CI."""

    a: ExportEvaluation
    b: ExportEvaluation
    differences: dict[str, PairedDifference]

    def table(self, digits: int = 4) -> str:
        """A, B, B - A, the interval, the p-value and the verdict per metric."""
        level = next(iter(self.differences.values())).confidence
        rows = {
            name: {
                "A": d.a,
                "B": d.b,
                "B - A": d.difference,
                f"{level:.0%} CI low": d.low,
                "high": d.high,
                "p": d.p_value,
                "verdict": d.verdict,
            }
            for name, d in self.differences.items()
        }
        return format_table(rows, digits=digits).replace("model ", "metric", 1)


def compare_exports(a, b, data: SplitData, split: str = "test", ks=(10,),
                    protocols=("sampled", "full"), *, reps: int = 2000, confidence: float = 0.95,
                    seed: int = 0, **options) -> ExportComparison:  # fmt: skip
    """Judges exports `a` and `b` on the same `split` rows and bootstraps every difference.

    Users are the resampling unit (all of a user's held-out rows move together); every
    metric uses the same resamples. `options` go to `evaluate_export` (depth, negatives...).
    """
    first = evaluate_export(a, data, split, ks, protocols, seed=seed, **options)
    second = evaluate_export(b, data, split, ks, protocols, seed=seed, **options)
    differences = compare_rows(
        first.rows(), second.rows(), first.users, reps=reps, confidence=confidence, seed=seed
    )
    return ExportComparison(first, second, differences)

"""Evaluation protocols: how a model's scores become comparable numbers.

Any model is seen through a score function

    score_fn(user_index: int64 [B], item_index: int64 [B, C]) -> float [B, C]

with indices into a fixed universe of users and `num_items` items, so Keras models, TFRS
retrieval models and the numpy baselines are all evaluated by the same code.

Two leave-one-out protocols, both ranking each user's held-out target:
- `full_ranking`: against every item, minus the items the user already has (train/valid). This
  is the honest protocol; prefer it whenever the catalogue fits.
- `sampled_ranking`: against `num_negatives` sampled items the user never interacted with (the
  NCF-style "1 + 99" protocol). Cheaper but known to distort model comparisons (Krichene & Rendle,
  2020), so it is labelled as such in every result.

The items to exclude are given as a `tfrec.data.SeenItems` (CSR: indptr [num_users + 1],
indices), or as that (indptr, indices) pair, or None; build it with
`SeenItems.from_pairs(users, items, ...)`. `evaluate` runs both protocols and returns one flat
dict keyed ``"<protocol>_<metric>"`` (``"full_hr@10"``, ``"sampled_ndcg@10"``): the one key style
of tfrec, also used (with Keras' ``val_`` prefix) in training logs.
"""

import warnings

import numpy as np

from tfrec.data.sampling import NegativeSampler
from tfrec.data.seen import SeenItems
from tfrec.evaluation.metrics import (
    auc,
    hit_rate_at_k,
    logloss,
    map_at_k,
    mrr,
    ndcg_at_k,
    precision_at_k,
    rank_of_targets,
    recall_at_k,
)

__all__ = [
    "full_ranking",
    "sampled_ranking",
    "evaluate",
    "pointwise",
    "format_table",
    "metrics_from_ranks",
]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _prepare(user_index, target_index, num_items, exclude, ks, batch_size):
    """Validates the shared protocol arguments; returns (users, targets, SeenItems, ks)."""
    num_items = _positive_int(num_items, "num_items")
    _positive_int(batch_size, "batch_size")
    users = np.asarray(user_index)
    targets = np.asarray(target_index)
    for array, name in ((users, "user_index"), (targets, "target_index")):
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(
                f"{name} must be a 1-D integer array. Received: shape={array.shape}, dtype={array.dtype}"
            )
    if users.size == 0:
        raise ValueError(
            "user_index is empty: there are no users to evaluate. Received: len(user_index)=0"
        )
    if users.size != targets.size:
        raise ValueError(
            "user_index and target_index must have the same length (one target per row). "
            f"Received: len(user_index)={users.size}, len(target_index)={targets.size}"
        )
    if targets.min() < 0 or targets.max() >= num_items:
        bad = targets[(targets < 0) | (targets >= num_items)][0]
        raise ValueError(
            f"target_index must lie in [0, num_items={num_items}). Received: target_index value {bad}"
        )
    if users.min() < 0:
        raise ValueError(
            f"user_index must be non-negative. Received: user_index value {users.min()}"
        )
    if exclude is None:
        exclude = SeenItems.empty(int(users.max()) + 1, num_items)
    elif not isinstance(exclude, SeenItems):
        if not isinstance(exclude, tuple | list) or len(exclude) != 2:
            raise ValueError(
                "exclude must be a SeenItems, an (indptr, indices) CSR pair or None; build one with "
                f"SeenItems.from_pairs(users, items, num_users, num_items). Received: {type(exclude).__name__}"
            )
        exclude = SeenItems(exclude[0], exclude[1], num_items)
    if exclude.num_items != num_items:
        raise ValueError(
            f"exclude was built for {exclude.num_items} items but num_items={num_items}. "
            f"Received: exclude.num_items={exclude.num_items}"
        )
    exclude.check_users(users)
    ks = tuple(_positive_int(k, "k") for k in ks)
    if not ks:
        raise ValueError("ks must contain at least one cut-off. Received: ks=()")
    return users.astype(np.int64), targets.astype(np.int64), exclude, ks


def _score(score_fn, users, items):
    scores = np.asarray(score_fn(users, items))
    if scores.shape != items.shape:
        raise ValueError(
            f"score_fn must return one score per candidate, shape {items.shape}. "
            f"Received: shape={scores.shape}"
        )
    return scores


def metrics_from_ranks(ranks, ks=(10,)):
    """The leave-one-out metric dict (hr, ndcg, recall, precision, map at each k, and mrr) from
    0-based target ranks; shared by both protocols so their keys always match."""
    results = {}
    for k in ks:
        results[f"hr@{k}"] = hit_rate_at_k(ranks, k)
        results[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
        results[f"recall@{k}"] = recall_at_k(ranks, k)
        results[f"precision@{k}"] = precision_at_k(ranks, k)
        results[f"map@{k}"] = map_at_k(ranks, k)
    results["mrr"] = mrr(ranks)
    return results


def full_ranking(score_fn, user_index, target_index, num_items, exclude, ks=(10,), batch_size=256):
    """Ranks each user's target against all `num_items` items, excluded items masked out.

    Users are scored in batches: score_fn receives item_index = every item for every row, a
    read-only [B, num_items] view (copy it before writing). The target is never excluded, even if
    it appears in `exclude`.

    Args:
        score_fn: callable (user_index [B], item_index [B, C]) -> scores [B, C].
        user_index: int array [N] (a user may repeat, one row per target).
        target_index: int array [N], held-out items.
        num_items: size of the item universe.
        exclude: SeenItems, (indptr, indices) CSR pair, or None.
        ks: cut-offs.
        batch_size: users per score_fn call.

    Returns:
        dict: hr@k, ndcg@k, recall@k, precision@k, map@k per k, mrr, and "protocol": "full".
    """
    users, targets, exclude, ks = _prepare(
        user_index, target_index, num_items, exclude, ks, batch_size
    )
    all_items = np.arange(num_items, dtype=np.int64)
    ranks = []
    for start in range(0, users.size, batch_size):
        batch_users = users[start : start + batch_size]
        items = np.broadcast_to(all_items, (batch_users.size, num_items))
        scores = _score(score_fn, batch_users, items)
        mask = exclude.dense_mask(batch_users)
        ranks.append(rank_of_targets(scores, targets[start : start + batch_size], mask))
    results = metrics_from_ranks(np.concatenate(ranks), ks)
    results["protocol"] = "full"
    return results


def sampled_ranking(
    score_fn,
    user_index,
    target_index,
    num_items,
    exclude,
    num_negatives=99,
    distribution="uniform",
    item_counts=None,
    seed=0,
    ks=(10,),
    batch_size=1024,
):
    """Ranks each user's target among `num_negatives` sampled items the user never interacted with.

    Negatives are distinct, exclude the target and the exclude set, and are drawn uniformly or in
    proportion to `item_counts` ("popularity"); see `NegativeSampler`. They depend only on
    (seed, user, target, exclude), so results do not change with batch_size or user order.
    score_fn receives item_index [B, 1 + num_negatives] with the target in column 0 (ties are
    still counted against the target).

    Returns:
        the same metric keys as `full_ranking`, and "protocol": "sampled-<n>-<distribution>".
    """
    users, targets, exclude, ks = _prepare(
        user_index, target_index, num_items, exclude, ks, batch_size
    )
    num_negatives = _positive_int(num_negatives, "num_negatives")
    sampler = NegativeSampler(exclude, distribution, item_counts=item_counts, seed=seed)
    ranks = []
    for start in range(0, users.size, batch_size):
        batch_users = users[start : start + batch_size]
        batch_targets = targets[start : start + batch_size]
        negatives = sampler.sample_distinct(batch_users, batch_targets, num_negatives)
        items = np.concatenate([batch_targets[:, None], negatives], axis=1)
        scores = _score(score_fn, batch_users, items)
        ranks.append(rank_of_targets(scores, np.zeros(batch_users.size, np.int64)))
    results = metrics_from_ranks(np.concatenate(ranks), ks)
    results["protocol"] = f"sampled-{num_negatives}-{distribution}"
    return results


def usable_negatives(seen, users, num_items: int, num_negatives: int, stacklevel=2) -> int:
    """`num_negatives`, or fewer (with a warning) when some user has fewer unseen items than
    that besides the target: the sampled protocol on catalogues too small for it."""
    available = int(num_items - (seen.counts(users) + 1).max())
    if available >= num_negatives:
        return num_negatives
    warnings.warn(
        f"Only {available} negatives are available for some user; sampled ranking uses "
        f"{max(available, 1)} instead of {num_negatives}.",
        stacklevel=stacklevel + 1,
    )
    return max(available, 1)


def evaluate(
    score_fn,
    user_index,
    target_index,
    num_items,
    exclude,
    ks=(10,),
    protocols=("sampled", "full"),
    num_negatives=99,
    distribution="uniform",
    item_counts=None,
    seed=0,
    batch_size=256,
):
    """Runs the chosen protocols and returns one flat dict keyed ``"<protocol>_<metric>"``.

    Both protocols by default, so a report always shows the honest number next to the sampled
    one. A catalogue too small for `num_negatives` (tiny test data) samples as many as every
    user can have, with a warning.
    """
    unknown = sorted(set(protocols) - {"sampled", "full"})
    if unknown or not protocols:
        raise ValueError(
            f"protocols must be a non-empty subset of ('sampled', 'full'). Received: {protocols!r}"
        )
    results = {}
    if "sampled" in protocols:
        users, _, seen, _ = _prepare(user_index, target_index, num_items, exclude, ks, batch_size)
        num_negatives = usable_negatives(seen, users, num_items, num_negatives)
        sampled = sampled_ranking(
            score_fn, user_index, target_index, num_items, exclude, num_negatives=num_negatives,
            distribution=distribution, item_counts=item_counts, seed=seed, ks=ks,
            batch_size=max(batch_size, 1024),
        )  # fmt: skip
        results.update({f"sampled_{k}": v for k, v in sampled.items() if k != "protocol"})
    if "full" in protocols:
        full = full_ranking(score_fn, user_index, target_index, num_items, exclude, ks, batch_size)
        results.update({f"full_{k}": v for k, v in full.items() if k != "protocol"})
    return results


def pointwise(labels, probabilities):
    """AUC and log loss of predicted click probabilities, the two numbers CTR models report."""
    return {"auc": auc(labels, probabilities), "logloss": logloss(labels, probabilities)}


def format_table(results, digits=4):
    """Aligned text table, one row per model and one column per metric, for the CLI and notebooks.

    Args:
        results: {model name: {metric: value}}; columns are the union of metric names in first-seen
            order; a missing metric shows as "-"; numbers use `digits` decimals.
        digits: decimals for float values.

    Returns:
        the table as a string (print it).
    """
    if not isinstance(results, dict) or not results:
        raise ValueError(
            f"results must be a non-empty dict of model -> metrics. Received: {results!r}"
        )
    columns = []
    for name, metrics in results.items():
        if not isinstance(metrics, dict):
            raise ValueError(
                f"results[{name!r}] must be a dict of metric -> value. Received: {type(metrics).__name__}"
            )
        columns.extend(key for key in metrics if key not in columns)

    def cell(value):
        if isinstance(value, float | np.floating):
            return f"{value:.{digits}f}"
        return str(value)

    header = ["model", *columns]
    rows = [
        [str(name)] + [cell(metrics[c]) if c in metrics else "-" for c in columns]
        for name, metrics in results.items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        first = row[0].ljust(widths[0])
        rest = (value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), separator, *(line(row) for row in rows)])

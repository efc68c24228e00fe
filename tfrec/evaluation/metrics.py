"""Ranking and pointwise metrics in plain, vectorized numpy.

Recommender metrics are easy to get subtly wrong (ties resolved in the model's favour, excluded
items counted, IDCG forgotten), so they live here once, checked against hand-ranked lists, and
every protocol in `tfrec.evaluation` goes through them.

Tie rule used everywhere: a tie is never resolved in the model's favour. A candidate whose score
equals the target's counts as ranked above it; in `topk_metrics`, relevant items are placed after
non-relevant items with the same score. A constant scorer therefore gets the worst possible rank.
"""

import numpy as np

__all__ = [
    "rank_of_targets",
    "hit_rate_at_k",
    "ndcg_at_k",
    "mrr",
    "recall_at_k",
    "precision_at_k",
    "map_at_k",
    "topk_metrics",
    "auc",
    "logloss",
]


def _check_scores(scores):
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be a 2-D array [batch, candidates]. Received: shape={scores.shape}"
        )
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(
        scores.dtype, np.complexfloating
    ):
        raise ValueError(f"scores must be real numbers. Received: dtype={scores.dtype}")
    if np.issubdtype(scores.dtype, np.floating):
        bad = np.isnan(scores)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"scores contain NaN (first at row {row}, candidate {col}); ranks would be "
                f"meaningless. Fix the model or its inputs. Received: scores[{row}, {col}]=nan"
            )
    return scores


def _check_mask(mask, shape, name):
    if mask is None:
        return np.zeros(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(
            f"{name} must have the shape of scores {shape}. Received: {name}.shape={mask.shape}"
        )
    if mask.dtype != bool:
        raise ValueError(f"{name} must be a boolean array. Received: {name}.dtype={mask.dtype}")
    return mask


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer. Received: k={k!r}")
    return int(k)


def _check_ranks(ranks):
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array. Received: shape={ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer) or (ranks < 0).any():
        raise ValueError(
            f"ranks must be non-negative integers (0 = ranked first), as returned by "
            f"rank_of_targets. Received: dtype={ranks.dtype}, min={ranks.min()}"
        )
    return ranks


def rank_of_targets(scores, target_index, exclude_mask=None):
    """0-based rank of each row's target among the row's non-excluded candidates.

    This is the single primitive behind leave-one-out evaluation: with it every metric is a
    cheap function of one integer per user.

    rank = #(other candidates with score > target score) + #(other candidates with an equal
    score); ties count against the model. Excluded candidates never count. An `exclude_mask`
    entry at the target itself is ignored (the target is always ranked).

    Args:
        scores: float array [B, C]; NaN raises ValueError.
        target_index: int array [B], the target's column in each row.
        exclude_mask: optional bool array [B, C], True for candidates to ignore.

    Returns:
        int64 array [B].
    """
    scores = _check_scores(scores)
    batch, num_candidates = scores.shape
    target_index = np.asarray(target_index)
    if target_index.shape != (batch,) or not np.issubdtype(target_index.dtype, np.integer):
        raise ValueError(
            f"target_index must be an integer array of shape ({batch},) matching scores. "
            f"Received: shape={target_index.shape}, dtype={target_index.dtype}"
        )
    if batch and (target_index.min() < 0 or target_index.max() >= num_candidates):
        bad = target_index[(target_index < 0) | (target_index >= num_candidates)][0]
        raise ValueError(
            f"target_index must lie in [0, {num_candidates}) (columns of scores). Received: target_index={bad}"
        )
    exclude_mask = _check_mask(exclude_mask, scores.shape, "exclude_mask")
    rows = np.arange(batch)
    target_scores = scores[rows, target_index]
    above_or_tied = (scores >= target_scores[:, None]) & ~exclude_mask
    above_or_tied[rows, target_index] = False
    return above_or_tied.sum(axis=1, dtype=np.int64)


def hit_rate_at_k(ranks, k):
    """Fraction of users whose target is in the top k (HR@k): the headline leave-one-out number."""
    ranks, k = _check_ranks(ranks), _check_k(k)
    return float(np.mean(ranks < k))


def ndcg_at_k(ranks, k):
    """Mean NDCG@k with one relevant item: 1/log2(rank+2) when rank < k, else 0 (IDCG is 1)."""
    ranks, k = _check_ranks(ranks), _check_k(k)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def mrr(ranks, k=None):
    """Mean reciprocal rank 1/(rank+1); with `k`, ranks at or beyond k contribute 0 (MRR@k)."""
    ranks = _check_ranks(ranks)
    reciprocal = 1.0 / (ranks + 1.0)
    if k is not None:
        reciprocal = np.where(ranks < _check_k(k), reciprocal, 0.0)
    return float(np.mean(reciprocal))


def recall_at_k(ranks, k):
    """Recall@k with one relevant item per user; equals HR@k, kept so reports name both."""
    return hit_rate_at_k(ranks, k)


def precision_at_k(ranks, k):
    """Precision@k with one relevant item per user: hit/k, so at most 1/k."""
    return hit_rate_at_k(ranks, k) / _check_k(k)


def map_at_k(ranks, k):
    """MAP@k with one relevant item per user: AP@k = 1/(rank+1) if rank < k, i.e. MRR@k."""
    return mrr(ranks, k)


def topk_metrics(scores, relevant_mask, exclude_mask=None, ks=(10,)):
    """Ranking metrics with any number of relevant items per row (the multi-target case).

    Rows are sorted by score (descending) with excluded candidates removed and ties broken
    against relevant items. A relevant candidate is never excluded (relevance wins).

    Per row, with `hits@k` the relevant items in the top k and `R` the number of relevant items:
    recall@k = hits/R, precision@k = hits/k, hr@k = [hits > 0], ndcg@k = DCG@k / IDCG@k with
    IDCG@k = sum_{i < min(R, k)} 1/log2(i+2), map@k = sum_{i<k} P@(i+1)·rel_i / min(R, k), and
    mrr = 1/(position of the first relevant item + 1) over the whole list. Means over rows.

    Args:
        scores: float array [B, C].
        relevant_mask: bool array [B, C]; every row needs at least one relevant item.
        exclude_mask: optional bool array [B, C].
        ks: iterable of positive cut-offs.

    Returns:
        dict with keys "recall@k", "precision@k", "ndcg@k", "map@k", "hr@k" for each k, and "mrr".
    """
    scores = _check_scores(scores)
    relevant = _check_mask(relevant_mask, scores.shape, "relevant_mask")
    excluded = _check_mask(exclude_mask, scores.shape, "exclude_mask") & ~relevant
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks must contain at least one cut-off. Received: ks=()")
    num_relevant = relevant.sum(axis=1)
    if scores.shape[0] == 0 or (num_relevant == 0).any():
        empty = np.flatnonzero(num_relevant == 0)
        raise ValueError(
            "every row needs at least one relevant item; drop rows without targets first. "
            f"Received: rows without relevant items={empty[:10].tolist()}, batch={scores.shape[0]}"
        )
    # np.lexsort sorts by the last key first: non-excluded first, then score descending, then
    # non-relevant before relevant among equal scores (ties against the model).
    order = np.lexsort((relevant, -scores.astype(np.float64), excluded), axis=-1)
    ranked_relevant = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    num_candidates = scores.shape[1]
    max_k = min(max(ks), num_candidates)
    top = ranked_relevant[:, :max_k]
    positions = np.arange(1, max_k + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(positions + 1.0)
    cum_hits = np.cumsum(top, axis=1)
    cum_dcg = np.cumsum(top * discounts, axis=1)
    cum_ap = np.cumsum(top * cum_hits / positions, axis=1)
    ideal_cum = np.cumsum(discounts)
    first_relevant = np.argmax(ranked_relevant > 0, axis=1)
    results = {}
    for k in ks:
        col = min(k, max_k) - 1
        hits = cum_hits[:, col]
        ideal = ideal_cum[np.minimum(num_relevant, k) - 1]
        results[f"recall@{k}"] = float(np.mean(hits / num_relevant))
        results[f"precision@{k}"] = float(np.mean(hits / k))
        results[f"ndcg@{k}"] = float(np.mean(cum_dcg[:, col] / ideal))
        results[f"map@{k}"] = float(np.mean(cum_ap[:, col] / np.minimum(num_relevant, k)))
        results[f"hr@{k}"] = float(np.mean(hits > 0))
    results["mrr"] = float(np.mean(1.0 / (first_relevant + 1.0)))
    return results


def _check_pointwise(labels, values, name):
    labels = np.asarray(labels)
    values = np.asarray(values, dtype=np.float64)
    if labels.ndim != 1 or values.shape != labels.shape:
        raise ValueError(
            f"labels and {name} must be 1-D arrays of the same length. "
            f"Received: labels.shape={labels.shape}, {name}.shape={values.shape}"
        )
    if labels.size == 0:
        raise ValueError(f"labels and {name} are empty; nothing to evaluate. Received: size=0")
    if not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][0]
        raise ValueError(f"labels must be 0/1 (or bool). Received: label={bad!r}")
    if np.isnan(values).any():
        raise ValueError(f"{name} contain NaN at index {int(np.flatnonzero(np.isnan(values))[0])}.")
    return labels.astype(bool), values


def auc(labels, scores):
    """Area under the ROC curve via ranks (Mann-Whitney U); ties between a positive and a negative
    count half. Exists for click models (CTR) where ranking quality is the question.

    Raises ValueError if only one class is present (AUC is undefined).
    """
    positive, scores = _check_pointwise(labels, scores, "scores")
    num_pos = int(positive.sum())
    num_neg = positive.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            "AUC needs both positive and negative labels. "
            f"Received: positives={num_pos}, negatives={num_neg}"
        )
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Average 1-based rank of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], sorted_scores.size]
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    rank_sum = ranks[positive].sum()
    return float((rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def logloss(labels, probabilities, eps=1e-7):
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps] so one confident mistake
    gives a large but finite loss. Exists to judge calibration of click models, which AUC ignores.
    """
    positive, probabilities = _check_pointwise(labels, probabilities, "probabilities")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5). Received: eps={eps}")
    if (probabilities < 0).any() or (probabilities > 1).any():
        bad = probabilities[(probabilities < 0) | (probabilities > 1)][0]
        raise ValueError(
            f"probabilities must lie in [0, 1]; pass sigmoid outputs, not logits. Received: probability={bad}"
        )
    p = np.clip(probabilities, eps, 1.0 - eps)
    return float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))

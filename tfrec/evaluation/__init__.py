"""Honest evaluation for recommenders: metrics, ranking protocols and result tables.

Everything here is numpy: a model is seen through a score function
`score_fn(user_index [B], item_index [B, C]) -> scores [B, C]`, so any model (Keras, TFRS,
the classical baselines in `tfrec.baselines`) is evaluated by the same, tested code.
"""

from tfrec.evaluation.exclude import ExcludeSet
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
    topk_metrics,
)
from tfrec.evaluation.protocols import (
    evaluate,
    format_table,
    full_ranking,
    metrics_from_ranks,
    pointwise,
    sampled_ranking,
)
from tfrec.evaluation.sampling import NegativeSampler

__all__ = [
    "ExcludeSet",
    "NegativeSampler",
    "auc",
    "evaluate",
    "format_table",
    "full_ranking",
    "hit_rate_at_k",
    "logloss",
    "map_at_k",
    "metrics_from_ranks",
    "mrr",
    "ndcg_at_k",
    "pointwise",
    "precision_at_k",
    "rank_of_targets",
    "recall_at_k",
    "sampled_ranking",
    "topk_metrics",
]

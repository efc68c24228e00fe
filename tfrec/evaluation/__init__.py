"""Honest evaluation for recommenders: metrics, ranking protocols and any model's scores.

Protocols are numpy: a model is seen through a score function
`score_fn(user_index [B], item_index [B, C]) -> scores [B, C]`, so Keras models (through
`CatalogueScorer` and the model contract) and the classical baselines in `tfrec.baselines` are
evaluated by the same, tested code. Results are flat dicts keyed ``"<protocol>_<metric>"``.
"""

from tfrec.evaluation.bootstrap import (
    PairedDifference,
    bootstrap_differences,
    compare_rows,
    paired_difference,
    per_row_metrics,
)
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
from tfrec.evaluation.scoring import CatalogueScorer, encode_catalogue, evaluate_model, score_fn

__all__ = [
    "CatalogueScorer",
    "PairedDifference",
    "bootstrap_differences",
    "compare_rows",
    "paired_difference",
    "per_row_metrics",
    "auc",
    "encode_catalogue",
    "evaluate",
    "evaluate_model",
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
    "score_fn",
    "topk_metrics",
]

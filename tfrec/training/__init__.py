"""Training: the batches each model's task needs, and `fit` with ranking-metric early stopping.

Layering: `tfrec.data` (splits, index-level pipelines) and `tfrec.features` (model inputs) feed
`tfrec.models`; this package trains them and uses `tfrec.evaluation` for validation metrics.
"""

from tfrec.training.fit import RankingEvaluation, fit
from tfrec.training.pipelines import PIPELINES, training_dataset, training_inputs, training_rows
from tfrec.training.warm_start import (
    ReplayData,
    WarmStart,
    WarmStartError,
    merge_configs,
    replay_data,
    warm_start,
)

__all__ = [
    "PIPELINES",
    "RankingEvaluation",
    "ReplayData",
    "WarmStart",
    "WarmStartError",
    "fit",
    "merge_configs",
    "replay_data",
    "training_dataset",
    "training_inputs",
    "training_rows",
    "warm_start",
]

"""Training: the batches each model's task needs, and `fit` with ranking-metric early stopping,
under any `tf.distribute` strategy (`tfrec.training.distribute`), resumable from a backup
(`tfrec.training.resume`).

Layering: `tfrec.data` (splits, index-level pipelines) and `tfrec.features` (model inputs) feed
`tfrec.models`; this package trains them and uses `tfrec.evaluation` for validation metrics.
"""

from tfrec.training.distribute import STRATEGIES, is_chief, ordinary_copy, strategy_from_name
from tfrec.training.fit import RankingEvaluation, fit
from tfrec.training.pipelines import PIPELINES, training_dataset, training_inputs, training_rows
from tfrec.training.resume import ResumableEarlyStopping, TrainingBackup
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
    "STRATEGIES",
    "RankingEvaluation",
    "ReplayData",
    "ResumableEarlyStopping",
    "TrainingBackup",
    "WarmStart",
    "WarmStartError",
    "fit",
    "is_chief",
    "merge_configs",
    "ordinary_copy",
    "replay_data",
    "strategy_from_name",
    "training_dataset",
    "training_inputs",
    "training_rows",
    "warm_start",
]

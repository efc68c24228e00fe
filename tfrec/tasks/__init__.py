"""Tasks: Keras layers that own a training objective's loss and metrics (as in TFRS).

Models are wired from blocks and only produce logits through the model contract; the task a
model trains with is injected (`task="ranking"` or a task instance), so ranking and retrieval
models are siblings rather than subclasses that undo each other:

- `RankingTask`: pointwise BCE on labelled pairs (positives and sampled negatives).
- `InBatchSoftmax`: softmax over the batch's items, log-Q corrected, hits removed.
- `CatalogueSoftmax`: softmax over the whole catalogue, full or sampled (next-item targets).
- `SampledBCE`: BCE / gBCE of each target against negatives drawn in the input pipeline.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.tasks.frequency import FrequencyEstimator
from tfrec.tasks.negatives import SampledBCE
from tfrec.tasks.ranking import RankingTask
from tfrec.tasks.retrieval import LOGQ_MODES, PROBABILITY_KEY, InBatchSoftmax
from tfrec.tasks.softmax import CatalogueSoftmax

TASKS = {
    "ranking": RankingTask,
    "in_batch": InBatchSoftmax,
    "catalogue": CatalogueSoftmax,
    "negatives": SampledBCE,
}
"""Task names accepted wherever a task is configured (``task="ranking"``)."""


def get_task(task, **options) -> tf.keras.layers.Layer:
    """A task layer from a name in `TASKS` (with `options`), a serialized config, or a layer."""
    if isinstance(task, str):
        if task not in TASKS:
            raise ValueError(
                f"Unknown task. Received: task={task!r}. Fix: use one of {sorted(TASKS)}."
            )
        return TASKS[task](**options)
    if isinstance(task, dict):
        task = tf.keras.layers.deserialize(task)
    if not isinstance(task, tf.keras.layers.Layer) or not hasattr(task, "objective"):
        raise TypeError(
            "`task` must be a tfrec task (a name, a config or a layer with an `objective`). "
            f"Received: task={type(task).__name__}"
        )
    return task


__all__ = [
    "LOGQ_MODES",
    "PROBABILITY_KEY",
    "TASKS",
    "CatalogueSoftmax",
    "FrequencyEstimator",
    "InBatchSoftmax",
    "RankingTask",
    "SampledBCE",
    "get_task",
]

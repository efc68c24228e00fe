"""The pointwise ranking task: binary cross-entropy on (query, candidate, label) rows.

Why this exists: CTR-style ranking models (DeepFM, FM, NCF, Wide&Deep, DCN) learn the
probability that a user interacts with an item from positives and sampled negatives. The task
owns that loss and its metrics (TFRS's `Ranking` task with BCE from logits, AUC and log loss),
so a model only produces logits; any tfrec model can train with it, because every model can
score aligned (query, candidate) pairs.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.tasks.reduction import replica_mean


@tf.keras.utils.register_keras_serializable(package="tfrec")
class RankingTask(tf.keras.layers.Layer):
    """Binary cross-entropy on logits of labelled pairs, with AUC and log-loss metrics.

    Training batches: one row per (query, candidate) pair with a float ``label`` (1 for an
    interaction, 0 for a sampled negative), as `tfrec.data.pointwise_dataset` makes them.

    Args:
      metrics: Track AUC and log loss during training (``False`` saves the per-step cost of
        AUC's 200 thresholds; validation ranking metrics are computed either way).

    Call arguments:
      labels: ``[B]`` float labels.
      logits: ``[B]`` logits.
      training: Whether this is a training step (metrics are updated either way).

    Returns:
      The scalar loss.

    Example:
      >>> task = RankingTask()
      >>> loss = task(tf.constant([1.0, 0.0]), tf.constant([2.0, -1.0]))
    """

    objective = "pointwise"
    """How models feed this task (see `tfrec.models.Recommender.compute_loss`)."""

    def __init__(self, metrics=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(metrics, bool):
            raise ValueError(f"`metrics` must be True or False. Received: metrics={metrics!r}")
        self.track_metrics = metrics
        self.ranking = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf.keras.losses.Reduction.NONE
            ),
            metrics=[
                tf.keras.metrics.AUC(from_logits=True, name="auc"),
                tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
            ]
            if metrics
            else None,
            name="ranking",
        )

    def call(self, labels, logits, training=False):
        labels = tf.cast(tf.reshape(labels, [-1, 1]), tf.float32)
        logits = tf.cast(tf.reshape(logits, [-1, 1]), tf.float32)
        losses = self.ranking(labels=labels, predictions=logits, training=training)
        return replica_mean(losses)  # the global batch's mean under any strategy

    def activation(self, logits):
        """What a served score is: the interaction probability."""
        return tf.sigmoid(tf.cast(logits, tf.float32))

    def get_config(self):
        config = super().get_config()
        config.update(metrics=self.track_metrics)
        return config

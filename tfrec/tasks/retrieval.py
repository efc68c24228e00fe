"""The in-batch softmax retrieval task, with the corrections sampled softmax needs.

Why this exists: retrieval models learn to pick the right item out of many, which a softmax
over candidates teaches directly. The cheapest candidate set is the batch itself: each positive
row's item is its label and the other rows' items are its negatives. This is TFRS's `Retrieval`
task generalised from dot products to any model's logits (so any tfrec model can train with
it), and it is exactly the InfoNCE loss (van den Oord et al., 2018). Three corrections apply
(Yi et al., 2019; Yang et al., 2020):

* log-Q: each candidate's logit is reduced by ``log q``, q being its probability of being
  drawn as a candidate, else popular items are over-penalised as negatives;
* accidental hits: a batch item equal to the row's positive is not a negative;
* mixed negatives: rows labelled 0 (uniformly sampled items) join the candidates as extra
  negatives for every positive row, which helps rare items that in-batch sampling almost never
  shows as negatives.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.tasks.frequency import FrequencyEstimator
from tfrec.tasks.reduction import replica_mean

LOGQ_MODES = ("none", "streaming", "feature")
PROBABILITY_KEY = "movie_probability"
"""Batch feature holding each row's item sampling probability (for ``logq="feature"``)."""


@tf.keras.utils.register_keras_serializable(package="tfrec")
class InBatchSoftmax(tf.keras.layers.Layer):
    """Softmax of each positive row over the batch's candidates, with log-Q and hit removal.

    Training batches: positives (and, with `mixed_negatives`, rows labelled 0 of uniformly
    sampled items), as `tfrec.data.positives_dataset` / `pointwise_dataset` make them.

    Args:
      logq: "streaming" (estimate probabilities with a `FrequencyEstimator`), "feature" (read
        each row's unigram probability from the batch feature ``movie_probability``) or
        "none".
      mixed_negatives: Use rows with label 0 as extra negatives for every positive row.
      remove_accidental_hits: Do not count a candidate equal to the positive as a negative.
      catalogue_size: Number of items the label-0 rows are drawn from uniformly (their
        sampling probability is 1 / catalogue_size); needed with mixed negatives and log-Q.
      estimator_buckets: Hash buckets of the frequency estimator.
      estimator_alpha: Moving-average rate of the frequency estimator.

    Call arguments:
      logits: ``[P, C]`` logits of the P positive rows against the C candidates, whose first
        P columns are the positives' own items in row order.
      candidate_ids: ``[C]`` ids of the candidates (for accidental hits).
      probability: ``[C]`` sampling probability of each candidate, or None.

    Returns:
      The scalar loss (mean over positive rows).

    Example:
      >>> task = InBatchSoftmax(logq="none")
      >>> loss = task(tf.eye(3) * 5.0, tf.constant(["a", "b", "c"]))
    """

    objective = "in_batch"

    def __init__(
        self,
        logq="streaming",
        mixed_negatives=True,
        remove_accidental_hits=True,
        catalogue_size=None,
        estimator_buckets=2**17,
        estimator_alpha=0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if logq not in LOGQ_MODES:
            raise ValueError(f"`logq` must be one of {LOGQ_MODES}. Received: logq={logq!r}")
        if catalogue_size is not None and (
            isinstance(catalogue_size, bool) or int(catalogue_size) < 1
        ):
            raise ValueError(
                "`catalogue_size` must be a positive integer. "
                f"Received: catalogue_size={catalogue_size!r}"
            )
        self.logq = logq
        self.mixed_negatives = bool(mixed_negatives)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.catalogue_size = None if catalogue_size is None else int(catalogue_size)
        self.estimator_buckets = int(estimator_buckets)
        self.estimator_alpha = float(estimator_alpha)
        self.estimator = (
            FrequencyEstimator(self.estimator_buckets, self.estimator_alpha, name="frequency")
            if logq == "streaming"
            else None
        )
        self.hits = tfrs.layers.loss.RemoveAccidentalHits()
        self.correction = tfrs.layers.loss.SamplingProbablityCorrection()
        self.loss_fn = tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE
        )

    def candidate_probability(self, ids, positive, features, training=False):
        """Sampling probability of each candidate column (positives, then extra negatives).

        In-batch candidates are drawn with the positives' distribution p_i and extra negatives
        uniformly, so a candidate draw is item i with probability
        ``q_i = (P * p_i + U / N) / (P + U)`` for P positive and U uniform rows; the streaming
        estimator's ``1 / gap`` already estimates ``P * p_i`` (appearances per batch).
        Returns None when `logq` is "none".
        """
        if self.logq == "none":
            return None
        num_pos = tf.reduce_sum(tf.cast(positive, tf.float32))
        mixed = self.mixed_negatives
        num_neg = tf.reduce_sum(tf.cast(~positive, tf.float32)) if mixed else 0.0
        if self.logq == "streaming":
            per_batch = [self.estimator(tf.boolean_mask(ids, positive), training=training)]
            if mixed:  # read after the update above (automatic control dependencies)
                per_batch.append(self.estimator(tf.boolean_mask(ids, ~positive)))
        else:
            if PROBABILITY_KEY not in features:
                raise KeyError(
                    f"logq='feature' needs the batch feature '{PROBABILITY_KEY}' (each row's "
                    f"item probability). Received keys: {sorted(features)}. Fix: add it, or "
                    "use logq='streaming'."
                )
            p = num_pos * tf.cast(features[PROBABILITY_KEY], tf.float32)
            per_batch = [tf.boolean_mask(p, positive)]
            if mixed:
                per_batch.append(tf.boolean_mask(p, ~positive))
        uniform = 0.0
        if mixed:
            if self.catalogue_size is None:
                raise ValueError(
                    "Mixed negatives with log-Q need the uniform negatives' probability. "
                    "Received: catalogue_size=None. Fix: pass catalogue_size."
                )
            uniform = num_neg / self.catalogue_size
        counts = tf.concat(per_batch, axis=0) + uniform
        return counts / tf.maximum(num_pos + num_neg, 1.0)

    def call(self, logits, candidate_ids=None, probability=None):
        logits = tf.cast(logits, tf.float32)
        shape = tf.shape(logits)
        labels = tf.eye(shape[0], shape[1], dtype=tf.float32)
        if probability is not None:
            logits = self.correction(logits, probability)
        if self.remove_accidental_hits and candidate_ids is not None:
            logits = self.hits(labels, logits, candidate_ids)
        return replica_mean(self.loss_fn(labels, logits))

    def activation(self, logits):
        """Served scores are the logits themselves (their order is what retrieval needs)."""
        return tf.cast(logits, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            logq=self.logq,
            mixed_negatives=self.mixed_negatives,
            remove_accidental_hits=self.remove_accidental_hits,
            catalogue_size=self.catalogue_size,
            estimator_buckets=self.estimator_buckets,
            estimator_alpha=self.estimator_alpha,
        )
        return config

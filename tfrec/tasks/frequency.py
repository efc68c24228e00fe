"""Streaming item-frequency estimation for the log-Q correction of in-batch softmax.

In-batch softmax uses the other positives of a batch as negatives, so popular items are
sampled as negatives far more often than rare ones and get pushed down: the model learns
popularity-discounted scores. Yi et al. (2019), "Sampling-bias-corrected neural modeling for
large corpus item recommendations", correct this by subtracting ``log q_i`` (the probability
that item i is sampled) from its logit, and estimate ``q_i`` while streaming over batches:
for each item they track the step it was last seen (array A) and a moving average of the
number of steps between sightings (array B); ``1 / B`` estimates the probability that the
item appears in a batch. Items are hashed into buckets so the arrays have a fixed size.
"""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FrequencyEstimator(tf.keras.layers.Layer):
    """Estimates, per item id, the probability that it appears in a training batch.

    Exists so that a two-tower model can apply the log-Q correction with no precomputed item
    counts: it learns the frequencies from the batches it trains on (Yi et al., 2019,
    Algorithm 2). With ``training=True`` a call advances the global step and updates the
    buckets of the ids it sees; it always returns ``1 / B[h(id)]``. The first sighting of a
    bucket sets its gap to the current step (a bucket never seen reads as probability 1/1 =
    1 until it is, which only matters in the first steps).

    Args:
      num_buckets: Size of the hash arrays; collisions merge items, so use more buckets than
        distinct items.
      alpha: Learning rate of the moving average of gaps (the paper's alpha).

    Call arguments:
      ids: ``[B]`` item ids (strings or integers).
      training: Whether to update the estimates with this batch.

    Returns:
      ``[B]`` float32 probabilities in (0, 1].

    Example:
      >>> estimator = FrequencyEstimator(num_buckets=1024)
      >>> p = estimator(tf.constant(["242", "7", "242"]), training=True)
    """

    def __init__(self, num_buckets=2**17, alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            raise ValueError(
                f"`num_buckets` must be a positive integer. Received: num_buckets={num_buckets!r}"
            )
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in (0, 1]. Received: alpha={alpha!r}")
        self.num_buckets = num_buckets
        self.alpha = float(alpha)

    def build(self, input_shape):
        self.step = self.add_weight(
            name="step", shape=(), dtype=tf.int64, initializer="zeros", trainable=False
        )
        self.last_step = self.add_weight(
            name="last_step",
            shape=(self.num_buckets,),
            dtype=tf.int64,
            initializer="zeros",
            trainable=False,
        )
        self.gap = self.add_weight(
            name="gap",
            shape=(self.num_buckets,),
            dtype=tf.float32,
            initializer="zeros",
            trainable=False,
        )
        super().build(input_shape)

    def buckets(self, ids):
        """Hash bucket of each id, ``[B]`` int64."""
        strings = ids if ids.dtype == tf.string else tf.strings.as_string(ids)
        return tf.strings.to_hash_bucket_fast(strings, self.num_buckets)

    def call(self, ids, training=False):
        buckets = self.buckets(ids)
        if training:
            step = self.step.assign_add(1)
            last = tf.gather(self.last_step, buckets)
            old_gap = tf.gather(self.gap, buckets)
            gap = tf.cast(step - last, tf.float32)
            new_gap = tf.where(last > 0, (1.0 - self.alpha) * old_gap + self.alpha * gap, gap)
            # Duplicate ids in a batch write identical values, so scatter order does not matter.
            with tf.control_dependencies(
                [self.gap.scatter_update(tf.IndexedSlices(new_gap, buckets))]
            ):
                update = self.last_step.scatter_update(
                    tf.IndexedSlices(tf.fill(tf.shape(buckets), step), buckets)
                )
            with tf.control_dependencies([update]):
                buckets = tf.identity(buckets)
        gap = tf.gather(self.gap, buckets)
        return 1.0 / tf.maximum(gap, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(num_buckets=self.num_buckets, alpha=self.alpha)
        return config

"""Softmax over the whole catalogue, full or sampled: the next-item objective.

Why this exists: a model that predicts *which* item comes next (a sequential recommender, or a
retrieval model trained on explicit targets) is best trained with a softmax over every item,
which is what full-ranking evaluation measures. The full softmax scores each query against the
whole catalogue per step; for catalogues too large for that, the sampled softmax scores the
target against `num_sampled` items drawn once per step (shared by the batch) and subtracts
``log Q`` (the expected number of draws of each item) from every logit, which keeps the
estimate of the full softmax's gradient unbiased in expectation (Jean et al., 2015; Bengio &
Senecal, 2008). A draw equal to the row's target is removed (accidental hit).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.tasks.reduction import replica_mean

SAMPLINGS = ("uniform", "unigram")
_MIN = -1e9


@tf.keras.utils.register_keras_serializable(package="tfrec")
class CatalogueSoftmax(tf.keras.layers.Layer):
    """Cross-entropy of each query's target item against the catalogue (full or sampled).

    Args:
      num_items: Catalogue size N (item indices are ``0..N-1``).
      num_sampled: 0 for the full softmax, else the number of items drawn per step.
      sampling: Proposal of the sampled softmax: "uniform", or "unigram" (proportional to
        item counts set with `set_item_counts`, e.g. training popularity).

    Call arguments:
      logits: ``[R, C]`` logits of R query rows against the candidates `candidates` returned.
      target_column: ``[R]`` column of each row's target in `logits`.
      log_q: ``[R, C]`` or ``[C]`` log expected draws to subtract, or None (full softmax).

    Returns:
      The scalar loss (mean over rows).

    Example:
      >>> task = CatalogueSoftmax(num_items=1682)              # full softmax
      >>> items, columns, log_q = task.candidates(targets)      # every item, targets' columns
      >>> loss = task(model.score_all(queries, encoded(items)), columns, log_q)
    """

    objective = "catalogue"

    def __init__(self, num_items, num_sampled=0, sampling="uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value, low in (("num_items", num_items, 1), ("num_sampled", num_sampled, 0)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(
                    f"`{name}` must be an integer >= {low}. Received: {name}={value!r}"
                )
        if sampling not in SAMPLINGS:
            raise ValueError(
                f"`sampling` must be one of {SAMPLINGS}. Received: sampling={sampling!r}"
            )
        self.num_items = int(num_items)
        self.num_sampled = int(num_sampled)
        self.sampling = sampling
        self.log_probability = self.add_weight(
            name="log_probability",
            shape=(self.num_items,),
            initializer=tf.keras.initializers.Constant(-np.log(self.num_items)),
            trainable=False,
        )

    def set_item_counts(self, counts) -> None:
        """Sets the "unigram" proposal from per-item counts (items never seen get count 1)."""
        counts = np.asarray(counts, np.float64)
        if counts.shape != (self.num_items,) or (counts < 0).any() or not np.isfinite(counts).all():
            raise ValueError(
                f"`counts` must be {self.num_items} finite non-negative numbers. Received: "
                f"shape={counts.shape}"
            )
        counts = np.maximum(counts, 1.0)
        self.log_probability.assign(np.log(counts / counts.sum()).astype(np.float32))

    def candidates(self, targets, seed=None):
        """``(items [C], target_column [R], log_q)`` to score the rows' `targets` against.

        Full softmax: every item, each target's own column, no correction. Sampled: the R
        targets followed by `num_sampled` draws; row r's target is column r, and a draw equal
        to it (or another row's target equal to it) is masked by `mask_hits`.
        """
        targets = tf.cast(tf.reshape(targets, [-1]), tf.int64)
        if not self.num_sampled:
            return tf.range(self.num_items, dtype=tf.int64), targets, None
        if self.sampling == "uniform":
            drawn = tf.random.uniform([self.num_sampled], 0, self.num_items, tf.int64, seed=seed)
        else:
            drawn = tf.random.categorical(
                self.log_probability[None, :], self.num_sampled, dtype=tf.int64, seed=seed
            )[0]
        items = tf.concat([targets, drawn], axis=0)
        expected = tf.math.log(float(self.num_sampled)) + tf.gather(self.log_probability, items)
        return items, tf.range(tf.size(targets, out_type=tf.int64)), expected

    def call(self, logits, target_column, log_q=None, items=None):
        logits = tf.cast(logits, tf.float32)
        target_column = tf.cast(target_column, tf.int64)
        if log_q is not None:
            logits -= tf.cast(log_q, tf.float32)
        if items is not None:  # sampled: no candidate equal to the target is a negative
            own = tf.one_hot(target_column, tf.shape(logits)[1], on_value=True, off_value=False)
            target_items = tf.gather(items, target_column)
            same = tf.equal(items[None, :], target_items[:, None]) & ~own
            logits = tf.where(same, _MIN, logits)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(target_column, logits)
        return replica_mean(losses)

    def activation(self, logits):
        """Served scores are the logits (a softmax would not change the order)."""
        return tf.cast(logits, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_items=self.num_items, num_sampled=self.num_sampled, sampling=self.sampling
        )
        return config

"""Binary cross-entropy with sampled negatives, and its calibrated form gBCE.

Why this exists: the original SASRec (Kang & McAuley 2018) trains each position to score its
next item above one sampled item it never interacted with, with a binary cross-entropy. That is
cheap, but a model trained on few negatives is overconfident about positives and its full-
ranking quality suffers. gSASRec (Petrov & Macdonald 2023) keeps the cheapness and fixes the
calibration: with k negatives drawn from N - 1 items (sampling rate ``alpha = k / (N - 1)``) the
positive's term is raised to ``beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)``:

    loss = -beta * log(sigmoid(s_pos)) - sum_j log(1 - sigmoid(s_neg_j))

``t = 0`` is plain BCE (beta = 1); ``t = 1`` fully corrects the sampling (beta = alpha).

Both terms see the logits plus one learned scalar, ``s + b``, with b starting at ``-log(k)``:
the base rate of k negatives per target. Without it a dot-product model must first build that
offset into every query and item vector (all 256 negatives' logits near -5.5), and does so by
collapsing to a popularity ranking for tens of epochs: SASRec with gBCE-256 on ml-100k sat at
validation full NDCG@10 0.035 until early stopping (test full HR@10 0.073); with b it leaves
from the first epoch (0.198, benchmarks/RESULTS.md). A constant does not change the ranking, so
served scores are the logits without it. The negatives come from the one
`tfrec.data.NegativeSampler`, drawn in the input pipeline, from one of two pools (``exclude_seen``):
the items the user never had in train, as the original SASRec draws its one negative, or the
whole catalogue, as gSASRec draws its many (a draw equal to the target is then dropped through
``negative_mask``). With many negatives the first pool hurts: every position then sees the user's
held-out items as negatives and none of their train items, and the model learns that complement
by heart. With one it helps SASRec: BCE-1 on ml-100k reached test full HR@10 0.189 with it
against 0.142 with uniform draws (benchmarks/RESULTS.md; GRU4Rec went the other way).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.tasks.reduction import replica_mean


@tf.keras.utils.register_keras_serializable(package="tfrec")
class SampledBCE(tf.keras.layers.Layer):
    """BCE (``calibration=0``) or gBCE of a target's logit against its sampled negatives' logits.

    Args:
      num_items: Catalogue size N (for the sampling rate alpha).
      num_negatives: k, negatives per target (drawn by the training pipeline).
      calibration: gBCE's t in [0, 1]; 0 gives plain BCE.
      exclude_seen: Draw negatives only among items the user never had in train, as the
        original SASRec does (False: uniformly over the whole catalogue, as gSASRec does). The
        training pipeline reads it.

    Call arguments:
      positive: ``[R]`` logits of the targets.
      negative: ``[R, k]`` logits of each target's negatives.
      negative_mask: Optional bool ``[R, k]``; False drops that negative's term (a uniform
        draw that hit the row's own target).

    Returns:
      The scalar loss (mean over the R targets) of the logits shifted by the learned
      ``offset`` (initially ``-log(num_negatives)``).

    Example:
      >>> task = SampledBCE(num_items=1682, num_negatives=1)          # SASRec's BCE
      >>> loss = task(tf.constant([2.0]), tf.constant([[-1.0]]))
    """

    objective = "negatives"

    def __init__(self, num_items, num_negatives=1, calibration=0.0, exclude_seen=False, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_items", num_items), ("num_negatives", num_negatives)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
        if num_negatives >= num_items:
            raise ValueError(
                f"`num_negatives` must be below num_items={num_items}. "
                f"Received: num_negatives={num_negatives}"
            )
        if isinstance(calibration, bool) or not 0.0 <= float(calibration) <= 1.0:
            raise ValueError(
                f"`calibration` must be in [0, 1]. Received: calibration={calibration!r}"
            )
        self.num_items = int(num_items)
        self.num_negatives = int(num_negatives)
        self.calibration = float(calibration)
        if not isinstance(exclude_seen, bool | np.bool_):
            raise ValueError(
                f"`exclude_seen` must be a bool. Received: exclude_seen={exclude_seen!r}"
            )
        self.exclude_seen = bool(exclude_seen)
        # Made here, not on the first call: that happens inside a replica's train step.
        self.offset = self.add_weight(
            name="logit_offset",
            shape=(),
            initializer=tf.keras.initializers.Constant(-np.log(self.num_negatives)),
        )

    @property
    def beta(self) -> float:
        """The power gBCE raises the positive's probability to (1 for plain BCE)."""
        alpha = self.num_negatives / (self.num_items - 1)
        t = self.calibration
        return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)

    def call(self, positive, negative, negative_mask=None):
        positive = tf.cast(positive, tf.float32) + self.offset
        terms = tf.math.log_sigmoid(-(tf.cast(negative, tf.float32) + self.offset))
        if negative_mask is not None:
            terms *= tf.cast(negative_mask, tf.float32)
        loss = -self.beta * tf.math.log_sigmoid(positive) - tf.reduce_sum(terms, axis=-1)
        return replica_mean(loss)

    def activation(self, logits):
        """Served scores are the logits (their order is what ranking needs; the offset, one
        constant, leaves it unchanged)."""
        return tf.cast(logits, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            num_negatives=self.num_negatives,
            calibration=self.calibration,
            exclude_seen=self.exclude_seen,
        )
        return config

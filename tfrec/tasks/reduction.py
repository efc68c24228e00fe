"""How every task turns per-example losses into the loss a replica differentiates.

Why this exists: under a `tf.distribute` strategy each replica computes the loss of its slice
of the global batch and the gradients are summed across replicas, so a replica must divide by
the *global* number of examples, not its own (Keras refuses its own losses' batch-mean
reduction there for this reason). Without a strategy this is the plain mean.
"""

from __future__ import annotations

import tensorflow as tf


def replica_mean(losses) -> tf.Tensor:
    """Mean of `losses` over this replica's examples, divided by the replicas in sync: summed
    over the replicas, the global batch's mean (the mean itself with one replica)."""
    losses = tf.cast(losses, tf.float32)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32)) / (
        replicas
    )

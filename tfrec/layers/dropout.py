"""Dropout from a stateless random stream: the same regularisation, a cheaper random mask.

Why this exists: Keras 2's `Dropout` draws its mask through the legacy stateful random ops,
which on CPU cost about as much as the small Dense layer they follow (measured in
benchmarks/bench_training.py). This layer draws a fresh seed pair per call (two stateful
numbers) and the mask from `tf.random.stateless_uniform`, which is several times cheaper;
reproducible under `tf.keras.utils.set_random_seed` like every Keras random op.
"""

from __future__ import annotations

import tensorflow as tf

_INT32_MAX = 2**31 - 1


@tf.keras.utils.register_keras_serializable(package="tfrec")
class StatelessDropout(tf.keras.layers.Layer):
    """Zeroes each input with probability `rate` in training and scales the rest by 1/(1-rate).

    Args:
      rate: Drop probability in [0, 1).

    Call arguments:
      x: Float tensor of any shape.
      training: Whether to drop (inference returns `x` unchanged).

    Returns:
      Tensor of the shape and dtype of `x`.

    Example:
      >>> StatelessDropout(0.5)(tf.ones([2, 4]), training=True).shape
      TensorShape([2, 4])
    """

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        seed = tf.random.uniform([2], 0, _INT32_MAX, dtype=tf.int32)
        if x.shape.rank and x.shape[-1] is not None and x.shape[-1] % 2 == 0:
            keep = self._keep_16bit(tf.shape(x), seed)
            return x * tf.cast(keep, x.dtype)
        keep = tf.random.stateless_uniform(tf.shape(x), seed, dtype=x.dtype) >= self.rate
        return tf.where(keep, x * tf.cast(1.0 / (1.0 - self.rate), x.dtype), tf.zeros_like(x))

    def _keep_16bit(self, shape, seed):
        """The scaled keep mask from 16-bit random numbers: each 32-bit draw of the random
        stream serves two units, halving its cost (the largest part of the layer's). A unit is
        kept when its number is at least ``round(rate * 2^16)``, so the drop probability is
        `rate` to within 2^-17 and the kept units are scaled by the exact inverse of the keep
        probability (the layer's output stays unbiased)."""
        dropped = round(self.rate * 65536)
        half = tf.concat([shape[:-1], [shape[-1] // 2]], axis=0)
        bits = tf.random.stateless_uniform(half, seed, minval=None, maxval=None, dtype=tf.int32)
        bits = tf.reshape(tf.bitcast(bits, tf.int16), shape)  # signed: [-2^15, 2^15)
        kept = tf.cast(bits >= dropped - 32768, tf.float32)
        return kept * (65536.0 / (65536 - dropped))

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate)
        return config

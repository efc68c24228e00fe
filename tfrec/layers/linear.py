"""First-order (linear) term of factorization-machine style models such as FM and DeepFM."""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class LinearTerm(tf.keras.layers.Layer):
    """Sums per-field first-order weights and adds a learned global bias.

    FM and DeepFM score an example as ``w0 + sum_f w_f + interactions``. The per-field weights
    ``w_f`` come from a 1-dimensional embedding of each field's id (looked up by the model);
    this layer owns only the global bias ``w0`` and does the masked reduction, so every
    FM-family model computes the first-order part the same way.

    Args:
        use_bias: Whether to add the learned global bias ``w0`` (initialized to zero).
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        weights: Float tensor ``[B, F]``, one first-order weight per field.
        mask: Optional ``[B, F]`` tensor (bool or 0/1); fields where it is false/0 do not
            contribute (e.g. padded multi-valued fields). Defaults to all fields counting.

    Returns:
        Tensor ``[B, 1]`` in the layer's compute dtype.

    Example:
        >>> layer = LinearTerm()
        >>> layer(tf.constant([[0.5, -1.0, 2.0]])).numpy()  # bias starts at 0
        array([[1.5]], dtype=float32)
    """

    def __init__(self, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(use_bias, bool):
            raise ValueError(f"use_bias must be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = use_bias

    def build(self, input_shape):
        """Creates the scalar global bias and checks that the input is ``[B, F]``."""
        shape = tf.TensorShape(input_shape)
        if shape.rank != 2:
            raise ValueError(
                "LinearTerm expects weights of shape [batch, num_fields]; reshape or squeeze "
                f"the 1-d embeddings first. Received: weights.shape={shape}"
            )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")
        super().build(input_shape)

    def call(self, weights, mask=None):
        """Returns ``sum_f mask_f * w_f (+ bias)`` as ``[B, 1]``."""
        weights = tf.cast(weights, self.compute_dtype)
        if mask is not None:
            weights = weights * tf.cast(mask, self.compute_dtype)
        out = tf.reduce_sum(weights, axis=1, keepdims=True)
        if self.use_bias:
            out = out + tf.cast(self.bias, self.compute_dtype)
        return out

    def compute_mask(self, inputs, mask=None):
        """The fields are reduced away, so no mask is propagated."""
        return None

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update({"use_bias": self.use_bias})
        return config

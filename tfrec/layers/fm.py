"""Second-order factorization-machine interaction (Rendle 2010), in O(k F) time."""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FactorizationMachine(tf.keras.layers.Layer):
    """Pairwise interaction term of a factorization machine over field embeddings.

    A factorization machine scores every pair of fields by the dot product of their latent
    vectors, ``sum_{i<j} <v_i, v_j>``. Written naively that is O(F^2 k); the identity

        sum_{i<j} <v_i, v_j> = 0.5 * sum_k ((sum_i v_ik)^2 - sum_i v_ik^2)

    makes it O(F k), which is what lets FM/DeepFM scale to many fields. With
    ``reduce_sum=False`` the inner vector (before summing over ``k``) is returned instead: the
    bi-interaction pooling used by NFM, which feeds it to an MLP.

    Args:
        reduce_sum: If True (default) return the scalar interaction ``[B, 1]``; if False return
            the bi-interaction vector ``[B, k]``.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        embeddings: Float tensor ``[B, F, k]``: one ``k``-dimensional latent vector per field.

    Returns:
        ``[B, 1]`` (``reduce_sum=True``) or ``[B, k]`` in the layer's compute dtype.

    Example:
        >>> v = tf.constant([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # B=1, F=3, k=2
        >>> FactorizationMachine()(v).numpy()  # 11 + 17 + 39
        array([[67.]], dtype=float32)
        >>> FactorizationMachine(reduce_sum=False)(v).numpy()
        array([[23., 44.]], dtype=float32)
    """

    def __init__(self, reduce_sum: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(reduce_sum, bool):
            raise ValueError(f"reduce_sum must be a bool. Received: reduce_sum={reduce_sum!r}")
        self.reduce_sum = reduce_sum

    def build(self, input_shape):
        """Checks that the input is ``[B, F, k]``."""
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3:
            raise ValueError(
                "FactorizationMachine expects embeddings of shape [batch, num_fields, "
                f"embedding_dim]; stack the per-field embeddings on axis 1. "
                f"Received: embeddings.shape={shape}"
            )
        super().build(input_shape)

    def call(self, embeddings):
        """Computes the O(F k) pairwise interaction."""
        embeddings = tf.cast(embeddings, self.compute_dtype)
        if self.reduce_sum:
            return _pairwise_sum(embeddings)
        return bi_interaction(embeddings)

    def compute_mask(self, inputs, mask=None):
        """The fields are reduced away, so no mask is propagated."""
        return None

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update({"reduce_sum": self.reduce_sum})
        return config


def bi_interaction(embeddings):
    """``0.5 * ((sum_f v_f)^2 - sum_f v_f^2)`` per latent dimension, ``[B, k]`` (NFM's
    bi-interaction pooling; summed over ``k`` it is the FM term)."""
    square_of_sum = tf.square(tf.reduce_sum(embeddings, axis=1))
    sum_of_square = tf.reduce_sum(tf.square(embeddings), axis=1)
    return 0.5 * (square_of_sum - sum_of_square)


@tf.custom_gradient
def _pairwise_sum(embeddings):
    """``0.5 * (||sum_f v_f||^2 - sum_f ||v_f||^2)`` per row, ``[B, 1]``, with its gradient
    written out: d/dv_f = sum_g v_g - v_f. Autodiff of the same forward broadcasts the
    reductions back through three intermediate ``[B, F, k]`` tensors; on the small models the
    factorization machine sits in, that was about a tenth of a training step (the profile in
    benchmarks/RESULTS.md)."""
    total = tf.reduce_sum(embeddings, axis=1)
    squares = tf.reduce_sum(tf.square(embeddings), axis=[1, 2])
    out = 0.5 * (tf.reduce_sum(tf.square(total), axis=1) - squares)

    def gradient(upstream):
        return upstream[:, :, None] * (total[:, None, :] - embeddings)

    return out[:, None], gradient

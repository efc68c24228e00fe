"""Pooling blocks: masked mean over variable-length sequences, and the GMF elementwise product."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class MaskedMeanPooling(tf.keras.layers.Layer):
    """Averages embeddings over the valid positions of a padded sequence.

    Multi-valued features (a user's watched items, a movie's genres) are padded to a fixed
    length; a plain mean would drag every average toward the padding vector. This layer
    averages only where the mask is true, and gives an all-zero vector (not NaN) for rows
    with no valid position, such as a cold-start user with an empty history.

    Args:
        axis: Axis to pool over (default 1, the sequence axis of ``[B, L, k]``). Must be
            neither the batch axis nor the last (embedding) axis.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        embeddings: Float tensor, e.g. ``[B, L, k]``.
        mask: Optional bool (or 0/1) tensor with the shape of ``embeddings`` minus its last
            axis, e.g. ``[B, L]``. Taken automatically from an upstream
            ``Embedding(mask_zero=True)``. If None, every position counts.

    Returns:
        ``embeddings`` with ``axis`` removed, e.g. ``[B, k]``, in the layer's compute dtype.

    Example:
        >>> x = tf.constant([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
        >>> MaskedMeanPooling()(x, mask=tf.constant([[True, True], [False, False]])).numpy()
        array([[2., 3.],
               [0., 0.]], dtype=float32)
    """

    def __init__(self, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
            raise ValueError(f"axis must be an int. Received: axis={axis!r}")
        self.axis = int(axis)
        self.supports_masking = True

    def build(self, input_shape):
        """Checks that ``axis`` is a middle axis of the input."""
        rank = tf.TensorShape(input_shape).rank
        if rank is not None:
            axis = self.axis % rank if -rank <= self.axis < rank else None
            if axis is None or axis == 0 or axis == rank - 1:
                raise ValueError(
                    f"MaskedMeanPooling axis must be between the batch axis and the last "
                    f"(embedding) axis of inputs of rank {rank}. Received: axis={self.axis}"
                )
        super().build(input_shape)

    def call(self, embeddings, mask=None):
        """Returns ``sum(mask * x) / max(sum(mask), 1)`` along ``axis``."""
        embeddings = tf.cast(embeddings, self.compute_dtype)
        if mask is None:
            return tf.reduce_mean(embeddings, axis=self.axis)
        weights = tf.cast(mask, self.compute_dtype)[..., tf.newaxis]
        total = tf.reduce_sum(embeddings * weights, axis=self.axis)
        count = tf.reduce_sum(weights, axis=self.axis)
        return total / tf.maximum(count, tf.ones_like(count))

    def compute_mask(self, inputs, mask=None):
        """The pooled axis is gone, so no mask is propagated."""
        return None

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update({"axis": self.axis})
        return config


@tf.keras.utils.register_keras_serializable(package="tfrec")
class ElementwiseProduct(tf.keras.layers.Layer):
    """Elementwise product of two (or more) same-shaped tensors.

    Generalized Matrix Factorization (GMF, the linear branch of NeuMF; He et al. 2017)
    multiplies the user and item embeddings elementwise and lets a Dense layer weight the
    result; with a fixed all-ones weight that is exactly matrix factorization's dot product.

    Args:
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: List ``[a, b]`` (or more) of float tensors of the same (broadcastable) shape,
            e.g. ``[B, k]`` user and item embeddings.

    Returns:
        ``a * b`` in the layer's compute dtype.

    Example:
        >>> ElementwiseProduct()([tf.constant([[1.0, 2.0]]), tf.constant([[3.0, 4.0]])]).numpy()
        array([[3., 8.]], dtype=float32)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        """Checks that the input is a list of at least two tensors."""
        if not isinstance(input_shape, list | tuple) or len(input_shape) < 2:
            raise ValueError(
                "ElementwiseProduct expects a list of at least two tensors, e.g. "
                f"[user_embedding, item_embedding]. Received: input_shape={input_shape}"
            )
        super().build(input_shape)

    def call(self, inputs):
        """Multiplies the inputs together."""
        result = tf.cast(inputs[0], self.compute_dtype)
        for other in inputs[1:]:
            result = result * tf.cast(other, self.compute_dtype)
        return result

    def get_config(self):
        """Returns the constructor arguments (only the standard ones) for serialization."""
        return super().get_config()

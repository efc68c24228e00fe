"""L2 normalization for embeddings compared by cosine similarity (e.g. two-tower retrieval)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrec")
class L2Normalize(tf.keras.layers.Layer):
    """Scales vectors to unit L2 norm: ``x / max(||x||, epsilon)``.

    Two-tower models normalize both towers so the dot product is a cosine in ``[-1, 1]`` and
    then divide it by a temperature themselves; this layer only normalizes. ``epsilon`` keeps
    all-zero vectors (e.g. a user with no history) at zero instead of NaN, and the gradient is
    finite there too. Under 16-bit policies the norm is computed in float32, because
    ``epsilon`` (and small squared norms) underflow in float16.

    Args:
        axis: Axis (int) or axes (list of ints) holding the vector to normalize.
        epsilon: Positive floor on the norm.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        x: Float tensor of any rank.

    Returns:
        Tensor of the same shape in the layer's compute dtype.

    Example:
        >>> L2Normalize()(tf.constant([[3.0, 4.0], [0.0, 0.0]])).numpy()
        array([[0.6, 0.8],
               [0. , 0. ]], dtype=float32)
    """

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, list | tuple) else [axis]
        if not axes or not all(
            isinstance(a, int | np.integer) and not isinstance(a, bool) for a in axes
        ):
            raise ValueError(f"axis must be an int or a list of ints. Received: axis={axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float | np.floating):
            raise ValueError(f"epsilon must be a positive float. Received: epsilon={epsilon!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be a positive float. Received: epsilon={epsilon!r}")
        self.axis = int(axis) if isinstance(axis, int | np.integer) else [int(a) for a in axes]
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        """Checks that every normalization axis exists in the input."""
        rank = tf.TensorShape(input_shape).rank
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        if rank is not None and not all(-rank <= a < rank for a in axes):
            raise ValueError(
                f"L2Normalize axis is out of range for inputs of rank {rank}. "
                f"Received: axis={self.axis!r}"
            )
        super().build(input_shape)

    def call(self, x):
        """Returns ``x * rsqrt(max(sum(x^2), epsilon^2))`` (= ``x / max(||x||, epsilon)``)."""
        x = tf.cast(x, self.compute_dtype)
        # 16-bit floats underflow epsilon**2 (and lose precision in the sum): use float32.
        work = tf.cast(x, tf.float32) if x.dtype.size < 4 else x
        axis = self.axis if isinstance(self.axis, int) else list(self.axis)
        squared = tf.reduce_sum(tf.square(work), axis=axis, keepdims=True)
        floor = tf.constant(self.epsilon**2, dtype=work.dtype)
        return tf.cast(work * tf.math.rsqrt(tf.maximum(squared, floor)), self.compute_dtype)

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        axis = self.axis if isinstance(self.axis, int) else list(self.axis)
        config.update({"axis": axis, "epsilon": self.epsilon})
        return config

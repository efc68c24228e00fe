"""DCN-v2 cross network (Wang et al. 2021): a stack of TFRS ``Cross`` layers."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.layers._checks import is_positive_int


@tf.keras.utils.register_keras_serializable(package="tfrec")
class CrossNetwork(tf.keras.layers.Layer):
    """Explicit bounded-degree feature crosses: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``.

    An MLP learns multiplicative feature interactions only implicitly and inefficiently; each
    cross layer multiplies the input ``x0`` elementwise with a linear map of the previous
    output, so ``num_layers`` layers express all feature crosses up to degree
    ``num_layers + 1`` with a residual path. This wraps ``tfrs.layers.dcn.Cross`` so DCN models
    get the whole stack (and its config) as one serializable layer.

    Args:
        num_layers: Number of stacked cross layers (>= 1).
        projection_dim: If None, each ``W_l`` is a full ``d x d`` matrix. If an int ``r``,
            ``W_l = U_l V_l`` is low-rank (``d x r`` times ``r x d``), cutting parameters from
            ``d^2`` to ``2 d r``; the paper finds ``r = d / 4`` keeps full-rank accuracy.
        use_bias: Whether each cross layer has the bias ``b_l``.
        kernel_initializer: Initializer of the kernels (each layer gets its own copy).
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        x0: Float tensor ``[B, d]`` (typically concatenated embeddings) with a known ``d``.

    Returns:
        ``[B, d]`` in the layer's compute dtype.

    Example:
        >>> cross = CrossNetwork(num_layers=2, projection_dim=4)
        >>> cross(tf.ones([8, 16])).shape
        TensorShape([8, 16])
    """

    def __init__(
        self,
        num_layers: int = 3,
        projection_dim: int | None = None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_positive_int(num_layers):
            raise ValueError(
                f"num_layers must be a positive int. Received: num_layers={num_layers!r}"
            )
        if projection_dim is not None and not is_positive_int(projection_dim):
            raise ValueError(
                "projection_dim must be a positive int or None (full rank). "
                f"Received: projection_dim={projection_dim!r}"
            )
        if not isinstance(use_bias, bool):
            raise ValueError(f"use_bias must be a bool. Received: use_bias={use_bias!r}")
        try:
            initializer = tf.keras.initializers.get(kernel_initializer)
        except ValueError as err:
            raise ValueError(
                f"Unknown kernel_initializer ({err}). "
                f"Received: kernel_initializer={kernel_initializer!r}"
            ) from err
        self.num_layers = int(num_layers)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.use_bias = use_bias
        self.kernel_initializer = initializer
        self._crosses = [
            tfrs.layers.dcn.Cross(
                projection_dim=self.projection_dim,
                use_bias=use_bias,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=f"cross_{i}",
            )
            for i in range(self.num_layers)
        ]

    def build(self, input_shape):
        """Checks that the input is ``[B, d]`` with a known ``d``."""
        shape = tf.TensorShape(input_shape)
        if shape.rank != 2 or shape[-1] is None:
            raise ValueError(
                "CrossNetwork expects x0 of shape [batch, d] with a known d; concatenate the "
                f"embeddings first. Received: x0.shape={shape}"
            )
        super().build(input_shape)

    def call(self, x0):
        """Applies the cross layers in turn, each crossing ``x0`` with the previous output."""
        x0 = tf.cast(x0, self.compute_dtype)
        x = x0
        for cross in self._crosses:
            x = cross(x0, x)
        return x

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "projection_dim": self.projection_dim,
                "use_bias": self.use_bias,
                "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config

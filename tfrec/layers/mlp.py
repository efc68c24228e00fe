"""Configurable multi-layer perceptron: the "deep" part of DeepFM, NCF, DCN and two-tower models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrec.layers._checks import is_positive_int
from tfrec.layers.dropout import StatelessDropout


@tf.keras.utils.register_keras_serializable(package="tfrec")
class MLP(tf.keras.layers.Layer):
    """Stack of dense blocks, optionally ending in a plain output projection.

    Every recommender here has a feed-forward tower; this layer keeps their block order and
    regularization identical so models differ only in what they wire, not in how an MLP is
    built. Each hidden block is ``Dense -> (BatchNorm) -> activation -> (Dropout)``. With
    ``batch_norm=True`` the hidden Dense layers have no bias (BatchNorm's beta replaces it).
    ``output_units`` appends one more Dense (e.g. ``1`` for a logit) with no dropout after it.

    Args:
        hidden_units: Sizes of the hidden layers, e.g. ``[256, 128]``. May be empty only if
            ``output_units`` is given (a linear/logistic model on the input).
        activation: Activation of the hidden layers (name or callable).
        dropout: Dropout rate in ``[0, 1)`` after each hidden activation, active only when
            ``training=True``.
        batch_norm: Whether to add BatchNormalization between each hidden Dense and its
            activation.
        output_units: If given, size of a final Dense layer without dropout.
        output_activation: Activation of that final layer (default: none, i.e. linear).
        kernel_regularizer: Regularizer applied to every Dense kernel.
        name: Layer name.
        **kwargs: Standard layer arguments (``dtype``, ...).

    Call arguments:
        x: Float tensor ``[B, d]``.
        training: Python bool or None; enables dropout and batch statistics.

    Returns:
        ``[B, output_units]`` if ``output_units`` is set, else ``[B, hidden_units[-1]]``, in
        the layer's compute dtype (cast logits to float32 yourself under mixed precision).

    Example:
        >>> tower = MLP([64, 32], dropout=0.2, output_units=1)
        >>> tower(tf.ones([8, 10])).shape
        TensorShape([8, 1])
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation="relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_units: int | None = None,
        output_activation=None,
        kernel_regularizer=None,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if isinstance(hidden_units, int | np.integer | str) or not all(
            is_positive_int(u) for u in hidden_units
        ):
            raise ValueError(
                "hidden_units must be a list of positive ints, e.g. [256, 128]. "
                f"Received: hidden_units={hidden_units!r}"
            )
        if output_units is not None and not is_positive_int(output_units):
            raise ValueError(
                f"output_units must be a positive int or None. Received: output_units={output_units!r}"
            )
        if not list(hidden_units) and output_units is None:
            raise ValueError(
                "MLP needs at least one layer: give hidden_units or output_units. "
                f"Received: hidden_units={hidden_units!r}, output_units=None"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, int | float | np.floating):
            raise ValueError(f"dropout must be a float in [0, 1). Received: dropout={dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be a bool. Received: batch_norm={batch_norm!r}")
        try:
            act = tf.keras.activations.get(activation)
            out_act = tf.keras.activations.get(output_activation)
        except ValueError as err:
            raise ValueError(
                f"Unknown activation ({err}). Received: activation={activation!r}, "
                f"output_activation={output_activation!r}"
            ) from err

        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = tf.keras.activations.serialize(act)
        self.dropout = float(dropout)
        self.batch_norm = batch_norm
        self.output_units = None if output_units is None else int(output_units)
        self.output_activation = tf.keras.activations.serialize(out_act)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

        policy = self.dtype_policy
        self._blocks = []
        for i, units in enumerate(self.hidden_units):
            self._blocks.append(
                tf.keras.layers.Dense(
                    units,
                    use_bias=not batch_norm,
                    kernel_regularizer=self.kernel_regularizer,
                    dtype=policy,
                    name=f"dense_{i}",
                )
            )
            if batch_norm:
                self._blocks.append(
                    tf.keras.layers.BatchNormalization(dtype=policy, name=f"batch_norm_{i}")
                )
            self._blocks.append(tf.keras.layers.Activation(act, dtype=policy, name=f"act_{i}"))
            if self.dropout > 0.0:
                self._blocks.append(
                    StatelessDropout(self.dropout, dtype=policy, name=f"dropout_{i}")
                )
        if self.output_units is not None:
            self._blocks.append(
                tf.keras.layers.Dense(
                    self.output_units,
                    activation=out_act,
                    kernel_regularizer=self.kernel_regularizer,
                    dtype=policy,
                    name="output",
                )
            )

    def build(self, input_shape):
        """Checks that the input is ``[B, d]`` with a known ``d``."""
        shape = tf.TensorShape(input_shape)
        if shape.rank is None or shape.rank < 2 or shape[-1] is None:
            raise ValueError(
                "MLP expects inputs of shape [batch, features] with a known last dimension; "
                f"flatten or concatenate embeddings first. Received: x.shape={shape}"
            )
        super().build(input_shape)

    def call(self, x, training=None):
        """Runs the blocks in order; dropout and BatchNorm follow ``training``."""
        for layer in self._blocks:
            if isinstance(layer, StatelessDropout | tf.keras.layers.BatchNormalization):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    def first_layer_part(self, x, start: int, stop: int, bias: bool = False):
        """One slice of the input's share of the first Dense: ``x @ kernel[start:stop]``.

        Exists for factorised scoring: when the input is ``[query part; candidate part]``, the
        first layer's pre-activation is the sum of each part's share, so each side can be
        computed once per query or per item. `bias` adds the first Dense's bias (give it to
        exactly one side). Returns float32 ``[N, units]``.
        """
        dense = self._blocks[0]
        if not isinstance(dense, tf.keras.layers.Dense) or not dense.built:
            raise ValueError(
                f"MLP '{self.name}' has not been called yet, so its first layer has no weights. "
                "Fix: call the model once before scoring."
            )
        kernel = tf.cast(dense.kernel[start:stop], tf.float32)
        if kernel.shape[0] != x.shape[-1]:
            raise ValueError(
                f"The input slice has {x.shape[-1]} features but rows {start}:{stop} of the "
                f"first layer take {kernel.shape[0]}. Received: x.shape={x.shape}"
            )
        hidden = tf.matmul(tf.cast(x, tf.float32), kernel)
        if bias and dense.use_bias:
            hidden += tf.cast(dense.bias, tf.float32)
        return hidden

    def after_first_layer(self, hidden, training=False):
        """Every block after the first Dense, on its pre-activation ``hidden`` ``[N, units]``."""
        x = tf.cast(hidden, self.compute_dtype)
        for layer in self._blocks[1:]:
            if isinstance(layer, StatelessDropout | tf.keras.layers.BatchNormalization):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "dropout": self.dropout,
                "batch_norm": self.batch_norm,
                "output_units": self.output_units,
                "output_activation": self.output_activation,
                "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config

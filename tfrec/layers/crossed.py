"""Hashed crossed categorical features: the "wide" memorisation part of Wide&Deep.

Wide&Deep (Cheng et al. 2016) memorises co-occurrences such as "user installed app A and is
shown app B" with one weight per *pair* of values. Enumerating every pair is impossible
(MovieLens: 1,682^2 movie pairs), so the concatenated values are hashed into a fixed number
of buckets, each with one learned weight; collisions are the price of the fixed size.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfrec.features.encoders import to_string
from tfrec.layers._checks import is_positive_int

_COMBINERS = ("sum", "mean")


def _as_matrix(values: tf.Tensor | tf.RaggedTensor, padding: str) -> tf.Tensor:
    """Any-dtype ``[B]`` / ``[B, L]`` (dense or ragged) values as ``[B, L]`` strings."""
    if isinstance(values, tf.RaggedTensor):
        values = tf.ragged.map_flat_values(to_string, values).to_tensor(default_value=padding)
    else:
        values = to_string(tf.convert_to_tensor(values))
    if values.shape.rank == 1:
        return values[:, tf.newaxis]
    if values.shape.rank != 2:
        raise ValueError(
            "CrossedCategorical expects each input as [batch] or [batch, length]. "
            f"Received: input.shape={values.shape}"
        )
    return values


@tf.keras.utils.register_keras_serializable(package="tfrec")
class CrossedCategorical(tf.keras.layers.Layer):
    """One learned weight per hashed combination of two (or more) categorical features.

    Every input is cast to strings (ints, floats rounded to integers, bools), multi-valued
    inputs contribute every value, and the crossed string ``"a<sep>b"`` of each combination is
    hashed (FarmHash, stable across runs and machines) into ``num_bins`` buckets. The layer
    returns the sum (or mean) of the buckets' weights over all valid combinations, i.e. a
    linear model on the one-hot crossed column. Combinations involving a padding value are
    skipped, so padded genres or an empty history add nothing.

    Memory: ``num_bins`` weights (plus the optimizer's slots). With more distinct pairs than
    buckets, unrelated pairs share a weight; size ``num_bins`` to a few times the number of
    pairs expected in training.

    Args:
        num_bins: Number of hash buckets (>= 1).
        separator: String placed between the values before hashing.
        padding_values: Values treated as missing in any input, e.g. ``["", "-1"]`` for padded
            string ids and ``-1``-padded int genres (compared after the cast to strings).
        combiner: "sum" (default, the wide linear model of the paper) or "mean" over the valid
            combinations of a row.
        embeddings_initializer: Initializer of the ``[num_bins, 1]`` weights (default zeros).
        embeddings_regularizer: Optional regularizer of the weights.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: List of at least two tensors ``[B]`` or ``[B, L_i]`` (dense or ragged).

    Returns:
        ``[B, 1]`` in the layer's compute dtype; rows without a valid combination give 0.

    Example:
        >>> gender = tf.constant(["M", "F"])
        >>> genres = tf.constant([[4, -1], [1, 7]])
        >>> CrossedCategorical(1000, padding_values=["", "-1"])([gender, genres]).shape
        TensorShape([2, 1])
    """

    def __init__(
        self,
        num_bins: int,
        separator: str = "_X_",
        padding_values: Sequence[str] = ("",),
        combiner: str = "sum",
        embeddings_initializer="zeros",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_positive_int(num_bins):
            raise ValueError(f"num_bins must be a positive int. Received: num_bins={num_bins!r}")
        if not isinstance(separator, str) or not separator:
            raise ValueError(
                f"separator must be a non-empty string. Received: separator={separator!r}"
            )
        if isinstance(padding_values, str) or not all(isinstance(p, str) for p in padding_values):
            raise ValueError(
                "padding_values must be a list of strings, e.g. ['', '-1']. "
                f"Received: padding_values={padding_values!r}"
            )
        if combiner not in _COMBINERS:
            raise ValueError(
                f"combiner must be one of {_COMBINERS}. Received: combiner={combiner!r}"
            )
        self.num_bins = int(num_bins)
        self.separator = separator
        self.padding_values = list(padding_values)
        self.combiner = combiner
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)

    def build(self, input_shape):
        """Checks for a list of >= 2 inputs and creates the ``[num_bins, 1]`` weights."""
        if not isinstance(input_shape, list | tuple) or len(input_shape) < 2:
            raise ValueError(
                "CrossedCategorical expects a list of at least two features to cross, e.g. "
                f"[user_gender, movie_genres]. Received: input_shape={input_shape}"
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_bins, 1),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )
        super().build(input_shape)

    def _valid(self, strings: tf.Tensor) -> tf.Tensor:
        valid = tf.ones_like(strings, dtype=tf.bool)
        for padding in self.padding_values:
            valid = tf.logical_and(valid, tf.not_equal(strings, padding))
        return valid

    def call(self, inputs):
        """Crosses the inputs (all value combinations per row) and sums the buckets' weights."""
        pad = self.padding_values[0] if self.padding_values else ""
        crossed, valid = None, None
        for values in inputs:
            strings = _as_matrix(values, pad)  # [B, L]
            mask = self._valid(strings)
            if crossed is None:
                crossed, valid = strings, mask
                continue
            left = crossed[:, :, tf.newaxis]
            right = strings[:, tf.newaxis, :]
            shape = tf.stack([tf.shape(left)[0], tf.shape(left)[1], tf.shape(right)[2]])
            joined = tf.strings.join(
                [tf.broadcast_to(left, shape), tf.broadcast_to(right, shape)], self.separator
            )
            crossed = tf.reshape(joined, [tf.shape(joined)[0], -1])
            both = tf.logical_and(valid[:, :, tf.newaxis], mask[:, tf.newaxis, :])
            valid = tf.reshape(both, [tf.shape(both)[0], -1])
        buckets = tf.strings.to_hash_bucket_fast(crossed, self.num_bins)
        # Gather whole rows so the gradient stays sparse (IndexedSlices) for large tables.
        weights = tf.cast(tf.gather(self.embeddings, buckets)[..., 0], self.compute_dtype)
        valid = tf.cast(valid, self.compute_dtype)
        total = tf.reduce_sum(weights * valid, axis=1, keepdims=True)
        if self.combiner == "mean":
            total = total / tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
        return total

    def compute_mask(self, inputs, mask=None):
        """The combinations are reduced away, so no mask is propagated."""
        return None

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update(
            {
                "num_bins": self.num_bins,
                "separator": self.separator,
                "padding_values": list(self.padding_values),
                "combiner": self.combiner,
                "embeddings_initializer": tf.keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": tf.keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config

"""Ordered item sequences as ``[B, L, k]`` embeddings with a mask, optionally tied to the item table.

Why this exists: a field encoder pools a multi-valued feature into one vector, which loses the
order a sequential recommender lives on. `SequenceEncoder` keeps it: it looks up a left-padded
sequence of item ids (newest last) and returns one embedding per position plus a mask of the
real (non-padding) positions. Asked to (``shared_item_field``), it uses the very vocabulary and
embedding table of the candidate tower's item field, so an item has one vector whether it is
being recommended or sits in a user's history (tied item embeddings, as in SASRec).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.encoders import to_string


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@tf.keras.utils.register_keras_serializable(package="tfrec")
class SequenceEncoder(tf.keras.layers.Layer):
    """Embeds an ordered, left-padded sequence of item ids, one vector per position.

    Args:
      key: Name of the ``[B, L']`` string (or int) feature holding the sequence, newest last,
        padded with `padding_value` on the left. Longer inputs keep their last `max_length`
        columns; shorter ones are left-padded.
      max_length: L, the number of positions returned.
      embedding_dim: Size k of each position's vector.
      vocabulary: Known item ids (its own table); None when `shared_item_field` is given.
      shared_item_field: Name of the candidate tower's item field whose vocabulary and table
        this encoder uses (set up by `tie`, which the model calls when it is built).
      padding_value: The value marking padding ("" for string ids).

    Call arguments:
      features: Dict of tensors; only ``features[key]`` is read.

    Returns:
      Dict with ``embeddings`` ``[B, L, k]`` (zeros at padding) and ``mask`` ``[B, L]`` bool.

    Example:
      >>> enc = SequenceEncoder("recent_movie_ids", max_length=3, embedding_dim=4,
      ...                       vocabulary=["1", "2"])
      >>> out = enc({"recent_movie_ids": tf.constant([["", "1", "2"]])})
      >>> out["embeddings"].shape, out["mask"].numpy().tolist()
      (TensorShape([1, 3, 4]), [[False, True, True]])
    """

    def __init__(
        self,
        key,
        max_length=50,
        embedding_dim=16,
        vocabulary=None,
        shared_item_field=None,
        padding_value="",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(key, str) or not key:
            raise ValueError(f"`key` must be a non-empty feature name. Received: key={key!r}")
        _check_positive(max_length, "max_length")
        _check_positive(embedding_dim, "embedding_dim")
        if (vocabulary is None) == (shared_item_field is None):
            raise ValueError(
                f"Give exactly one of `vocabulary` and `shared_item_field` for sequence '{key}'. "
                f"Received: vocabulary={'None' if vocabulary is None else 'a list'}, "
                f"shared_item_field={shared_item_field!r}"
            )
        self.key = key
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.vocabulary = None if vocabulary is None else [str(v) for v in vocabulary]
        self.shared_item_field = shared_item_field
        self.padding_value = str(padding_value)
        self.lookup = None
        self.embedding = None
        if self.vocabulary is not None:
            self.lookup = tf.keras.layers.StringLookup(
                vocabulary=self.vocabulary, num_oov_indices=1, mask_token=None
            )
            self.embedding = tf.keras.layers.Embedding(
                len(self.vocabulary) + 1,
                embedding_dim,
                embeddings_initializer=tf.keras.initializers.RandomNormal(0.0, 0.05),
            )

    def tie(self, item_encoder) -> None:
        """Uses `item_encoder`'s lookup and embedding table (a `CategoricalEncoder`)."""
        if self.shared_item_field is None:
            raise ValueError(
                f"Sequence '{self.key}' has its own vocabulary. Received: a tie to "
                f"'{item_encoder.name}'. Fix: build it with shared_item_field."
            )
        if item_encoder.embedding_dim != self.embedding_dim or item_encoder.multi_valued:
            raise ValueError(
                f"Sequence '{self.key}' can only share a single-valued item field of size "
                f"{self.embedding_dim}. Received: field '{item_encoder.name}' with "
                f"embedding_dim={item_encoder.embedding_dim}"
            )
        self.lookup = item_encoder.lookup
        self.embedding = item_encoder.embedding

    def _check_tied(self):
        if self.lookup is None:
            raise ValueError(
                f"Sequence '{self.key}' shares the table of '{self.shared_item_field}' but was "
                "never tied to it. Fix: use it inside a tfrec model (which ties it), or call "
                "`tie(item_encoder)`."
            )

    def preprocess(self, features):
        """Raw sequence -> ``[B, L]`` int64 ids, -1 at padding (string work only)."""
        self._check_tied()
        strings = to_string(features[self.key])
        if isinstance(strings, tf.RaggedTensor):  # pad on the left, so the newest stays last
            flipped = tf.RaggedTensor.from_row_lengths(
                tf.reverse(strings.values, [0]), tf.reverse(strings.row_lengths(), [0])
            )
            strings = tf.reverse(flipped.to_tensor(default_value=self.padding_value), [0, 1])
        width = tf.shape(strings)[1]
        strings = strings[:, tf.maximum(width - self.max_length, 0) :]
        pad = tf.maximum(self.max_length - tf.shape(strings)[1], 0)
        strings = tf.pad(strings, [[0, 0], [pad, 0]], constant_values=self.padding_value)
        strings = tf.reshape(strings, [-1, self.max_length])
        ids = tf.cast(self.lookup(strings), tf.int64)
        return tf.where(tf.equal(strings, self.padding_value), tf.constant(-1, tf.int64), ids)

    def embed(self, ids):
        """Ids from `preprocess` -> ``{"embeddings": [B, L, k], "mask": [B, L]}``."""
        self._check_tied()
        mask = ids >= 0
        embeddings = self.embedding(tf.maximum(ids, 0))
        embeddings *= tf.cast(mask, embeddings.dtype)[..., None]
        return {"embeddings": embeddings, "mask": mask}

    def call(self, features):
        return self.embed(self.preprocess(features))

    def get_config(self):
        config = super().get_config()
        config.update(
            key=self.key,
            max_length=self.max_length,
            embedding_dim=self.embedding_dim,
            vocabulary=self.vocabulary,
            shared_item_field=self.shared_item_field,
            padding_value=self.padding_value,
        )
        return config

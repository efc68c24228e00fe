"""Field-aware factorization machine (FFM, Juan et al. 2016): embedding and interaction.

In a plain FM each feature has one latent vector used against every other field. FFM gives
each feature one latent vector *per opposite field*, so the way a user id interacts with an
item genre is learned separately from how it interacts with the hour of day. The price is
memory (F times the embedding table) and time (no O(F k) shortcut), documented below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrec.layers._checks import is_positive_int


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FieldAwareEmbedding(tf.keras.layers.Layer):
    """Looks up, for every field's id, one latent vector per opposite field.

    Parameter count: ``sum(vocab_sizes) * F * k`` (``F = num_fields``, ``k = embedding_dim``),
    i.e. F times a plain FM embedding (``sum(vocab_sizes) * k``): each feature stores one
    ``k``-vector for each field it can interact with. With 3 fields of 1000 ids and k=4 that
    is 36,000 weights instead of 12,000; budget for it before adding many fields.

    All fields share one table of shape ``[sum(vocab_sizes), F * k]``; field ``f``'s ids are
    offset by ``sum(vocab_sizes[:f])`` so a single gather serves every field.

    Args:
        vocab_sizes: Vocabulary size per field; ids of field ``f`` must lie in
            ``[0, vocab_sizes[f])``. A single size with ``num_fields > 1`` means all fields
            index one shared vocabulary (libffm-style global feature ids).
        num_fields: Number of fields ``F``. Defaults to ``len(vocab_sizes)``; must equal it
            unless ``vocab_sizes`` has a single (shared) entry.
        embedding_dim: Latent size ``k`` of each field-aware vector (libffm's default is 4).
        embeddings_initializer: Initializer of the table.
        embeddings_regularizer: Optional regularizer of the table.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        ids: Integer ids already mapped per field (e.g. by StringLookup): a ``[B, F]`` tensor,
            or a list of ``F`` tensors of shape ``[B]`` or ``[B, 1]``. Out-of-range ids raise
            an ``InvalidArgumentError`` instead of silently reading another field's rows.

    Returns:
        ``[B, F, F, k]`` where ``out[:, i, j]`` is field ``i``'s vector used against field ``j``.

    Example:
        >>> emb = FieldAwareEmbedding(vocab_sizes=[10, 20, 5], embedding_dim=4)
        >>> emb(tf.constant([[1, 7, 0], [9, 19, 4]])).shape
        TensorShape([2, 3, 3, 4])
    """

    def __init__(
        self,
        vocab_sizes: Sequence[int],
        num_fields: int | None = None,
        embedding_dim: int = 4,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vocab_sizes, int | np.integer | str) or len(vocab_sizes) == 0:
            raise ValueError(
                "vocab_sizes must be a non-empty list with one size per field. "
                f"Received: vocab_sizes={vocab_sizes!r}"
            )
        vocab_sizes = [v.item() if isinstance(v, np.generic) else v for v in vocab_sizes]
        if not all(is_positive_int(v) for v in vocab_sizes):
            raise ValueError(
                f"vocab_sizes must all be positive ints. Received: vocab_sizes={vocab_sizes!r}"
            )
        if num_fields is None:
            num_fields = len(vocab_sizes)
        if not is_positive_int(num_fields):
            raise ValueError(
                f"num_fields must be a positive int or None. Received: num_fields={num_fields!r}"
            )
        if len(vocab_sizes) not in (1, num_fields):
            raise ValueError(
                f"num_fields must equal len(vocab_sizes) ({len(vocab_sizes)}), or vocab_sizes "
                f"must hold one shared size. Received: num_fields={num_fields!r}"
            )
        if not is_positive_int(embedding_dim):
            raise ValueError(
                f"embedding_dim must be a positive int. Received: embedding_dim={embedding_dim!r}"
            )
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.num_fields = int(num_fields)
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        shared = len(self.vocab_sizes) == 1
        sizes = self.vocab_sizes * self.num_fields if shared else self.vocab_sizes
        offsets = np.zeros(self.num_fields) if shared else np.cumsum([0] + sizes[:-1])
        self._offsets = offsets.astype(np.int64)
        self._limits = np.asarray(sizes, dtype=np.int64)

    def build(self, input_shape):
        """Creates the ``[sum(vocab_sizes), F * k]`` table."""
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(sum(self.vocab_sizes), self.num_fields * self.embedding_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )
        super().build(input_shape)

    def _stack(self, ids):
        if isinstance(ids, list | tuple):
            ids = [tf.reshape(t, [-1]) if t.shape.rank == 2 else t for t in ids]
            ids = tf.stack(ids, axis=1)
        if ids.shape.rank != 2 or ids.shape[1] not in (None, self.num_fields):
            raise ValueError(
                f"FieldAwareEmbedding expects ids of shape [batch, {self.num_fields}] or a "
                f"list of {self.num_fields} tensors [batch]. Received: ids.shape={ids.shape}"
            )
        if not ids.dtype.is_integer:
            raise ValueError(
                "FieldAwareEmbedding expects integer ids (map raw values with "
                f"StringLookup/IntegerLookup first). Received: ids.dtype={ids.dtype.name}"
            )
        return ids

    def call(self, ids):
        """Gathers the field-aware vectors of every field's id."""
        ids = self._stack(ids)
        limits = tf.constant(self._limits, dtype=ids.dtype)
        checks = [
            tf.debugging.assert_non_negative(
                ids, message=f"FieldAwareEmbedding {self.name}: ids must be >= 0 (x = ids)"
            ),
            tf.debugging.assert_less(
                ids,
                limits,
                message=(
                    f"FieldAwareEmbedding {self.name}: each field's ids must be < its vocab "
                    "size (x = ids, y = vocab sizes); fix the lookup or raise vocab_sizes"
                ),
            ),
        ]
        with tf.control_dependencies(checks):
            rows = ids + tf.constant(self._offsets, dtype=ids.dtype)
        vectors = tf.gather(self.embeddings, rows)
        shape = [-1, self.num_fields, self.num_fields, self.embedding_dim]
        return tf.cast(tf.reshape(vectors, shape), self.compute_dtype)

    def get_config(self):
        """Returns the constructor arguments for serialization."""
        config = super().get_config()
        config.update(
            {
                "vocab_sizes": list(self.vocab_sizes),
                "num_fields": self.num_fields,
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": tf.keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": tf.keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FieldAwareInteraction(tf.keras.layers.Layer):
    """Pairwise FFM interaction ``sum_{i<j} <e[:, i, j], e[:, j, i]>``.

    Memory and time cost: every pair (i, j) uses two vectors that no other pair uses, so one
    example reads F*(F-1) latent vectors of size k (plus the unused diagonal) instead of FM's
    F, and computes F*(F-1)/2 dot products: O(F^2 k), with no sum-of-squares shortcut because
    the vectors differ per pair. Each feature stores F latent vectors of size k instead of 1
    (see ``FieldAwareEmbedding``). That buys field-specific interactions at F times the memory.

    The pairs are taken with two static index arrays (upper triangle, built once from F), so
    the call is one gather per side and one reduction, with no loop over pairs.

    Args:
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        embeddings: Float tensor ``[B, F, F, k]``; ``embeddings[:, i, j]`` is field ``i``'s
            vector used against field ``j`` (the output of ``FieldAwareEmbedding``). F must be
            known when the layer is built.

    Returns:
        ``[B, 1]`` in the layer's compute dtype.

    Example:
        >>> emb = FieldAwareEmbedding(vocab_sizes=[10, 20, 5], embedding_dim=4)
        >>> FieldAwareInteraction()(emb(tf.constant([[1, 7, 0]]))).shape
        TensorShape([1, 1])
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._num_fields = None

    def build(self, input_shape):
        """Builds the static flat indices of the upper-triangle pairs (i, j) and (j, i)."""
        shape = tf.TensorShape(input_shape)
        if shape.rank != 4 or shape[1] is None or shape[1] != shape[2]:
            raise ValueError(
                "FieldAwareInteraction expects embeddings of shape [batch, F, F, k] with a "
                "known F (use FieldAwareEmbedding). Received: embeddings.shape="
                f"{shape}"
            )
        num_fields = int(shape[1])
        rows, cols = np.triu_indices(num_fields, k=1)
        self._left = rows * num_fields + cols  # flat index of e[:, i, j]
        self._right = cols * num_fields + rows  # flat index of e[:, j, i]
        self._num_fields = num_fields
        super().build(input_shape)

    def call(self, embeddings):
        """Sums the dot products of the (i, j) and (j, i) vectors over all pairs i < j."""
        embeddings = tf.cast(embeddings, self.compute_dtype)
        flat = tf.reshape(
            embeddings, [-1, self._num_fields * self._num_fields, tf.shape(embeddings)[-1]]
        )
        left = tf.gather(flat, self._left, axis=1)
        right = tf.gather(flat, self._right, axis=1)
        return tf.reduce_sum(left * right, axis=[1, 2])[:, tf.newaxis]

    def compute_mask(self, inputs, mask=None):
        """The fields are reduced away, so no mask is propagated."""
        return None

    def get_config(self):
        """Returns the constructor arguments (only the standard ones) for serialization."""
        return super().get_config()

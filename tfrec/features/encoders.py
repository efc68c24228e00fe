"""Keras layers that turn one raw feature into one FM field: an embedding and a weight.

Every column of a tower becomes one *field encoder*. An encoder reads its own key from the
feature dict, maps raw values to ids with a Keras preprocessing layer whose vocabulary is
part of the layer's config (so it lives inside every SavedModel and never in a pickle), and
returns the field's latent vector ``[B, k]`` and its first-order weight ``[B]``: exactly what
the linear, FM and DNN heads of DeepFM consume.
"""

from __future__ import annotations

import tensorflow as tf

_YEAR_PATTERN = r".*\((\d{4})\)\s*$"
MAX_STANDARDISED = 1e6
"""Standardised numeric values are clipped to this many standard deviations: an input that far
from the training data carries no more signal and would otherwise overflow to inf."""
DENSE_POOLING_ROWS = 1 << 16
"""Multi-valued fields with at most this many ids pool with a dense table gradient
(`mean_of_rows`); larger tables gather (sparse gradient, what `LazyAdam` needs to stay
row-wise)."""
MULTI_HOT_ROWS = 256
"""Multi-valued fields over at most this many ids (genres, age buckets) pool as a dense
multi-hot matmul (`multi_hot_mean`): no sparse op at all."""


@tf.custom_gradient
def mean_of_rows(ids, *tables):
    """Per row of `ids` ``[B, L]`` (-1: padding), the mean of its valid ids' rows of each table.

    Exists because pooling a history of L items is the critical path of a small model's
    training step (benchmarks/RESULTS.md, issue 16). The forward pass gathers the ``[B, L, k]``
    rows and averages them with one batched matmul (multi-threaded); the gradient of each
    table is the transposed share matrix times the upstream gradient, ``S^T @ g`` with
    ``S[b, id] = 1 / count_b``, one sparse-dense matmul into the dense ``[V, k]`` shape: no
    ``[B, L, k]`` intermediate and no sort of the B x L ids (which the sparse gradient of a
    gather needs before an optimizer can apply it). Rows without valid ids pool to zeros.

    Args:
      ids: Int ``[B, L]`` row ids, negative for padding.
      *tables: Float32 ``[V, k_i]`` tables.

    Returns:
      One float32 ``[B, k_i]`` tensor per table.
    """
    valid = ids >= 0
    shares = tf.cast(valid, tf.float32)
    shares /= tf.maximum(tf.reduce_sum(shares, axis=1, keepdims=True), 1.0)
    safe = tf.maximum(ids, 0)
    pooled = [tf.einsum("bl,blk->bk", shares, tf.gather(t, safe)) for t in tables]

    def gradient(*upstream):
        where = tf.where(valid)
        matrix = tf.sparse.SparseTensor(
            tf.stack([where[:, 0], tf.cast(tf.gather_nd(ids, where), tf.int64)], axis=1),
            tf.gather_nd(shares, where),
            tf.stack(
                [tf.shape(ids, out_type=tf.int64)[0], tf.shape(tables[0], out_type=tf.int64)[0]]
            ),
        )
        grads = [tf.sparse.sparse_dense_matmul(matrix, g, adjoint_a=True) for g in upstream]
        return [None, *grads]

    return pooled, gradient


def multi_hot_mean(ids, *tables):
    """`mean_of_rows` for tables of a few rows: each row of `ids` becomes its ``[V]`` vector
    of shares (1 / count per occurrence; -1 padding one-hots to zeros), and each table is
    pooled by one dense ``[B, V] @ [V, k]`` matmul (its gradient the transposed one). For a
    20-genre table that is cheaper than any gather or sparse op."""
    shares = tf.cast(ids >= 0, tf.float32)
    shares /= tf.maximum(tf.reduce_sum(shares, axis=1, keepdims=True), 1.0)
    weights = tf.einsum("bl,blv->bv", shares, tf.one_hot(ids, tf.shape(tables[0])[0]))
    return [tf.matmul(weights, t) for t in tables]


def to_string(values: tf.Tensor) -> tf.Tensor:
    """Casts ids of any dtype to strings so one lookup layer serves ints, bools and text."""
    if values.dtype == tf.string:
        return values
    if values.dtype.is_floating:
        return tf.strings.as_string(values, precision=0)
    return tf.strings.as_string(values)


def title_year(titles: tf.Tensor) -> tf.Tensor:
    """Release year parsed from a MovieLens title such as ``"Toy Story (1995)"``; NaN if absent."""
    year = tf.strings.regex_replace(titles, _YEAR_PATTERN, r"\1")
    is_year = tf.strings.regex_full_match(titles, _YEAR_PATTERN)
    numbers = tf.strings.to_number(tf.where(is_year, year, "0"), out_type=tf.float32)
    return tf.where(is_year, numbers, tf.fill(tf.shape(numbers), float("nan")))


def title_tokens(titles: tf.Tensor, max_length: int) -> tf.Tensor:
    """Lower-cased word tokens of a title without its ``(year)``, padded with "" to max_length."""
    text = tf.strings.lower(tf.strings.regex_replace(titles, r"\(\d{4}\)\s*$", ""))
    text = tf.strings.regex_replace(text, r"[^a-z0-9' ]", " ")
    tokens = tf.strings.split(text)
    return tokens.to_tensor(default_value="", shape=[None, max_length])


def categorical_strings(
    values, *, transform="none", prefix_length=None, max_length=16, padding_value=""
):
    """The strings a CategoricalEncoder looks up; shared with vocabulary building so both agree."""
    if isinstance(values, tf.RaggedTensor):
        default = padding_value if values.dtype == tf.string else int(padding_value)
        values = values.to_tensor(default_value=default)
    if transform == "title_tokens":
        return title_tokens(to_string(values), max_length)
    strings = to_string(values)
    if prefix_length:
        strings = tf.strings.substr(strings, 0, prefix_length, unit="UTF8_CHAR")
    return strings


def _validate_key(key) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"`key` must be a non-empty feature name. Received: key={key!r}")


def _validate_dim(embedding_dim) -> None:
    if not isinstance(embedding_dim, int) or embedding_dim <= 0:
        raise ValueError(
            f"`embedding_dim` must be a positive integer. Received: embedding_dim={embedding_dim!r}"
        )


class _FieldEncoder(tf.keras.layers.Layer):
    """Shared plumbing of field encoders: `call` = `embed(preprocess(features))`, and the
    per-id latent vector and first-order weight tables."""

    def _make_tables(self, size: int, embedding_dim: int) -> None:
        self.embedding = tf.keras.layers.Embedding(
            size,
            embedding_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(0.0, 0.05),
        )
        self.weight = tf.keras.layers.Embedding(size, 1, embeddings_initializer="zeros")

    def call(self, features):
        return self.embed(self.preprocess(features))


@tf.keras.utils.register_keras_serializable(package="tfrec")
class CategoricalEncoder(_FieldEncoder):
    """Embeds a categorical feature (single- or multi-valued) as one FM field.

    Exists so that ids of any dtype (strings, ints, bools) share one code path: values are cast
    to strings, looked up in a vocabulary (or hashed into ``hash_bins`` buckets when the id space
    is too large to enumerate), embedded, and, for multi-valued inputs such as genres or a
    history of movies, mean-pooled over the non-padding entries.

    Args:
      key: Name of the feature in the input dict.
      vocabulary: List of known values (strings). Unknown values map to an out-of-vocabulary
        bucket. Exactly one of `vocabulary` and `hash_bins` must be given.
      embedding_dim: Size k of the latent vector.
      hash_bins: Number of hash buckets, for vocabularies too large to store.
      multi_valued: Whether the input is ``[B, L]`` (padded) or ragged, pooled to one field.
      padding_value: Value marking padding in multi-valued inputs ("" for strings; ints and
        bools are compared after conversion to strings, so use "-1" for ``-1`` padding).
      prefix_length: Keep only the first N characters (e.g. a zip-code prefix).
      transform: "none", or "title_tokens" to embed the words of a title.
      max_length: Number of tokens kept by the "title_tokens" transform.

    Call arguments:
      features: Dict of tensors; only ``features[key]`` is read.

    Returns:
      A tuple ``(embedding [B, k], weight [B])``.

    Example:
      >>> enc = CategoricalEncoder("user_id", vocabulary=["1", "2"], embedding_dim=4)
      >>> emb, w = enc({"user_id": tf.constant(["1", "9"])})
    """

    def __init__(
        self,
        key,
        vocabulary=None,
        embedding_dim=16,
        hash_bins=None,
        multi_valued=False,
        padding_value="",
        prefix_length=None,
        transform="none",
        max_length=16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _validate_key(key)
        _validate_dim(embedding_dim)
        if (vocabulary is None) == (hash_bins is None):
            raise ValueError(
                f"Give exactly one of `vocabulary` and `hash_bins` for feature '{key}'. "
                f"Received: vocabulary={'None' if vocabulary is None else 'a list'}, "
                f"hash_bins={hash_bins!r}"
            )
        if hash_bins is not None and (not isinstance(hash_bins, int) or hash_bins <= 0):
            raise ValueError(
                f"`hash_bins` must be a positive integer. Received: hash_bins={hash_bins!r}"
            )
        if transform not in ("none", "title_tokens"):
            raise ValueError(
                f"`transform` must be 'none' or 'title_tokens'. Received: transform={transform!r}"
            )
        if prefix_length is not None and (not isinstance(prefix_length, int) or prefix_length <= 0):
            raise ValueError(
                f"`prefix_length` must be a positive integer. Received: prefix_length={prefix_length!r}"
            )
        self.key = key
        self.vocabulary = None if vocabulary is None else [str(v) for v in vocabulary]
        self.embedding_dim = embedding_dim
        self.hash_bins = hash_bins
        self.multi_valued = bool(multi_valued or transform == "title_tokens")
        self.padding_value = str(padding_value)
        self.prefix_length = prefix_length
        self.transform = transform
        self.max_length = max_length
        if hash_bins is not None:
            self.lookup = tf.keras.layers.Hashing(num_bins=hash_bins)
            size = hash_bins
        else:
            self.lookup = tf.keras.layers.StringLookup(
                vocabulary=self.vocabulary, num_oov_indices=1, mask_token=None
            )
            size = len(self.vocabulary) + 1
        self._make_tables(size, embedding_dim)

    def preprocess(self, features):
        """Raw feature -> int ids (-1 marks padding in multi-valued inputs); no weights used."""
        strings = categorical_strings(
            features[self.key],
            transform=self.transform,
            prefix_length=self.prefix_length,
            max_length=self.max_length,
            padding_value=self.padding_value,
        )
        ids = tf.cast(self.lookup(strings), tf.int64)
        if self.multi_valued:
            ids = tf.where(tf.equal(strings, self.padding_value), tf.constant(-1, tf.int64), ids)
        return ids

    def embed(self, ids):
        """Ids from `preprocess` -> (embedding [B, k], first-order weight [B])."""
        if not self.multi_valued:
            return self.embedding(ids), tf.squeeze(self.weight(ids), -1)
        if self.embedding.input_dim <= DENSE_POOLING_ROWS:
            return self._pool_by_matmul(ids)
        valid = ids >= 0
        safe = tf.maximum(ids, 0)
        emb, w = self.embedding(safe), tf.squeeze(self.weight(safe), -1)
        mask = tf.cast(valid, emb.dtype)
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        pooled = tf.reduce_sum(emb * mask[..., None], axis=1) / count[:, None]
        return pooled, tf.reduce_sum(w * mask, axis=1) / count

    def _pool_by_matmul(self, ids):
        """The mean of each row's valid ids' rows, with a dense gradient (`multi_hot_mean` for
        tiny tables, else `mean_of_rows`)."""
        for table in (self.embedding, self.weight):
            if not table.built:
                table.build((None,))
        tables = [tf.cast(t.embeddings, tf.float32) for t in (self.embedding, self.weight)]
        if self.embedding.input_dim <= MULTI_HOT_ROWS:
            emb, w = multi_hot_mean(ids, *tables)
        else:
            emb, w = mean_of_rows(ids, *tables)
        return tf.cast(emb, self.compute_dtype), tf.cast(w[:, 0], self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            key=self.key,
            vocabulary=self.vocabulary,
            embedding_dim=self.embedding_dim,
            hash_bins=self.hash_bins,
            multi_valued=self.multi_valued,
            padding_value=self.padding_value,
            prefix_length=self.prefix_length,
            transform=self.transform,
            max_length=self.max_length,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfrec")
class NumericEncoder(_FieldEncoder):
    """Embeds a numeric feature as one FM field, normalised or bucketized.

    Exists because FM treats a real value x as a feature with latent vector ``x * v``: with
    `boundaries` the value is bucketized and each bucket gets its own vector (better for
    non-linear effects such as release year); otherwise it is standardised with the training
    mean and variance. Missing values (NaN, or a title without a year) land in a bucket of
    their own, or at the mean.

    Args:
      key: Name of the feature in the input dict.
      embedding_dim: Size k of the latent vector.
      mean: Training mean, for standardisation.
      variance: Training variance, for standardisation.
      boundaries: Sorted bucket boundaries; when given, the value is bucketized instead.
      transform: "none", or "title_year" to parse the release year out of a MovieLens title.

    Call arguments:
      features: Dict of tensors; only ``features[key]`` is read.

    Returns:
      A tuple ``(embedding [B, k], weight [B])``.

    Example:
      >>> enc = NumericEncoder("raw_user_age", embedding_dim=4, mean=34.0, variance=150.0)
      >>> emb, w = enc({"raw_user_age": tf.constant([25.0, 40.0])})
    """

    def __init__(
        self,
        key,
        embedding_dim=16,
        mean=0.0,
        variance=1.0,
        boundaries=None,
        transform="none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _validate_key(key)
        _validate_dim(embedding_dim)
        if transform not in ("none", "title_year"):
            raise ValueError(
                f"`transform` must be 'none' or 'title_year'. Received: transform={transform!r}"
            )
        if variance is None or float(variance) < 0:
            raise ValueError(f"`variance` must be >= 0. Received: variance={variance!r}")
        if boundaries is not None and list(boundaries) != sorted(boundaries):
            raise ValueError(f"`boundaries` must be sorted. Received: boundaries={boundaries!r}")
        self.key = key
        self.embedding_dim = embedding_dim
        self.mean = float(mean)
        self.variance = float(variance)
        self.boundaries = None if boundaries is None else [float(b) for b in boundaries]
        self.transform = transform
        if self.boundaries is not None:
            self.bucketize = tf.keras.layers.Discretization(bin_boundaries=self.boundaries)
            size = len(self.boundaries) + 2  # buckets plus one for missing values
            self._make_tables(size, embedding_dim)

    def build(self, input_shape):
        if self.boundaries is None:
            self.vector = self.add_weight(
                name="vector",
                shape=(self.embedding_dim,),
                initializer=tf.keras.initializers.RandomNormal(0.0, 0.05),
            )
            self.scalar = self.add_weight(name="scalar", shape=(), initializer="zeros")
        super().build(input_shape)

    def preprocess(self, features):
        """Raw feature -> bucket ids (int64) or the standardised value (float32)."""
        values = features[self.key]
        values = (
            title_year(values) if self.transform == "title_year" else tf.cast(values, tf.float32)
        )
        missing = tf.math.is_nan(values)
        if self.boundaries is not None:
            buckets = tf.cast(self.bucketize(tf.where(missing, 0.0, values)), tf.int64)
            return tf.where(missing, tf.cast(len(self.boundaries) + 1, tf.int64), buckets)
        std = max(self.variance, 1e-12) ** 0.5
        scaled = tf.clip_by_value((values - self.mean) / std, -MAX_STANDARDISED, MAX_STANDARDISED)
        return tf.where(missing, 0.0, scaled)

    def embed(self, values):
        """Output of `preprocess` -> (embedding [B, k], first-order weight [B])."""
        if self.boundaries is not None:
            return self.embedding(values), tf.squeeze(self.weight(values), -1)
        scaled = tf.cast(values, self.compute_dtype)
        vector = tf.cast(self.vector, self.compute_dtype)
        return scaled[:, None] * vector[None, :], scaled * tf.cast(self.scalar, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            key=self.key,
            embedding_dim=self.embedding_dim,
            mean=self.mean,
            variance=self.variance,
            boundaries=self.boundaries,
            transform=self.transform,
        )
        return config

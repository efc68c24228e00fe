"""Declarative feature columns: what a tower should embed, adapted from training data.

A column is a small, immutable description ("embed user_id with a vocabulary of at most 50k
ids", "bucketize the release year parsed from the title into 10 quantiles"). `build` reads the
training table once, vectorised, to fix the vocabulary or the statistics, and returns a Keras
field encoder whose config carries them. This replaces the deprecated ``tf.feature_column``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from tfrec.features.encoders import (
    CategoricalEncoder,
    NumericEncoder,
    categorical_strings,
    title_year,
)
from tfrec.features.sequence import SequenceEncoder


def _column(table: dict, key: str) -> np.ndarray:
    if key not in table:
        raise KeyError(
            f"Feature column needs the field '{key}', but the training table has only "
            f"{sorted(table)}. Fix: add '{key}' to the data or drop the column."
        )
    column = np.asarray(table[key])
    if len(column) == 0:
        raise ValueError(f"Cannot adapt column '{key}': the training table is empty.")
    return column


def frequency_vocabulary(strings, max_tokens=None, min_count=1, exclude=("",)) -> list:
    """Distinct values sorted by descending count (ties by value), capped and filtered.

    `strings` is a string tensor or array (str or UTF-8 bytes) of any shape. Its values are
    counted by TensorFlow's hash-based unique, in linear time: numpy's sort of millions of
    Python strings (a 20-movie history on every training row) took 5 s of each model build."""
    flat = tf.reshape(tf.convert_to_tensor(strings, dtype=tf.string), [-1])
    values, _, counts = tf.unique_with_counts(flat, out_idx=tf.int64)
    values, counts = values.numpy(), counts.numpy()
    keep = counts >= min_count
    for value in exclude:
        keep &= values != (value.encode() if isinstance(value, str) else value)
    values, counts = values[keep], counts[keep]
    values = values[np.lexsort((values, -counts))]
    if max_tokens is not None:
        values = values[:max_tokens]
    return [v.decode("utf-8") for v in values]


@dataclass(frozen=True)
class Categorical:
    """A categorical id (user_id, occupation, zip prefix...) with a vocabulary or hashing.

    Args:
      key: Input feature name.
      max_tokens: Keep only the most frequent values (a frequency-capped vocabulary); the
        rest share the out-of-vocabulary bucket.
      min_count: Drop values seen fewer times than this.
      hash_bins: Hash into this many buckets instead of keeping a vocabulary (for id spaces
        too large to enumerate; collisions are the price).
      prefix_length: Keep only the first N characters (e.g. zip code -> region).
      name: Field name; defaults to `key`.
    """

    key: str
    max_tokens: int | None = None
    min_count: int = 1
    hash_bins: int | None = None
    prefix_length: int | None = None
    name: str | None = None

    multi_valued = False
    padding_value = ""
    transform = "none"
    max_length = 16

    @property
    def field_name(self) -> str:
        return self.name or (
            f"{self.key}_prefix{self.prefix_length}" if self.prefix_length else self.key
        )

    def vocabulary(self, table: dict) -> list | None:
        if self.hash_bins is not None:
            return None
        strings = categorical_strings(
            tf.constant(_column(table, self.key)),
            transform=self.transform,
            prefix_length=self.prefix_length,
            max_length=self.max_length,
            padding_value=self.padding_value,
        )
        return frequency_vocabulary(strings, self.max_tokens, self.min_count, (self.padding_value,))

    def build(self, table: dict, embedding_dim: int) -> CategoricalEncoder:
        vocabulary = self.vocabulary(table)
        if vocabulary == []:  # StringLookup would fail with "Cannot set an empty vocabulary"
            raise ValueError(
                f"Column '{self.key}' has no value to build a vocabulary from: every training "
                f"value is padding ({self.padding_value!r}) or seen fewer than min_count times. "
                f"Received: min_count={self.min_count}, {len(_column(table, self.key))} rows. "
                "Fix: lower min_count, use hash_bins=, or drop the column."
            )
        return CategoricalEncoder(
            key=self.key,
            vocabulary=vocabulary,
            embedding_dim=embedding_dim,
            hash_bins=self.hash_bins,
            multi_valued=self.multi_valued,
            padding_value=self.padding_value,
            prefix_length=self.prefix_length,
            transform=self.transform,
            max_length=self.max_length,
            name=self.field_name,
        )

    def to_config(self) -> dict:
        return {"class": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class MultiCategorical(Categorical):
    """A multi-valued categorical (genres, the user's recent movies), mean-pooled to one field.

    Input is ``[B, L]`` padded with `padding` (or ragged). Use padding "-1" for int64 ids such
    as TFDS genre labels, "" for strings.
    """

    padding: str = ""

    multi_valued = True

    @property
    def padding_value(self) -> str:  # type: ignore[override]
        return self.padding


@dataclass(frozen=True)
class Text(Categorical):
    """Words of a free-text field (a movie title), lower-cased, mean-pooled to one field."""

    length: int = 16

    transform = "title_tokens"
    multi_valued = True

    @property
    def max_length(self) -> int:  # type: ignore[override]
        return self.length


@dataclass(frozen=True)
class Numeric:
    """A real value, standardised or bucketized into quantiles.

    Args:
      key: Input feature name.
      num_buckets: Bucketize into this many training quantiles (None = standardise).
      transform: "none", or "title_year" to read the year out of a MovieLens title.
      name: Field name; defaults to `key` (or "<key>_year").
    """

    key: str
    num_buckets: int | None = None
    transform: str = "none"
    name: str | None = None

    @property
    def field_name(self) -> str:
        return self.name or (f"{self.key}_year" if self.transform == "title_year" else self.key)

    def _values(self, table: dict) -> np.ndarray:
        column = _column(table, self.key)
        if self.transform == "title_year":
            return title_year(tf.constant(column)).numpy()
        if not np.issubdtype(column.dtype, np.number) and column.dtype != bool:
            raise TypeError(
                f"Numeric column '{self.key}' needs numbers. Received: dtype={column.dtype}. "
                "Fix: use Categorical for ids and strings."
            )
        return column.astype(np.float64)

    def build(self, table: dict, embedding_dim: int) -> NumericEncoder:
        values = self._values(table)
        values = values[~np.isnan(values)]  # NaN means missing
        if values.size == 0:
            raise ValueError(
                f"Numeric column '{self.key}' has no non-missing values to adapt to. Received: "
                f"{len(_column(table, self.key))} rows, all NaN. Fix: fill the column or drop it."
            )
        too_large = ~(np.abs(values) <= np.finfo(np.float32).max)  # served as float32
        if too_large.any():
            raise ValueError(
                f"Numeric column '{self.key}' holds {int(too_large.sum())} infinite or "
                f"out-of-float32-range values. Received: {self.key}={float(values[too_large][0])!r}. "
                "Fix: clean the training table (NaN marks a missing value)."
            )
        boundaries = None
        if self.num_buckets:
            quantiles = np.quantile(values, np.linspace(0, 1, self.num_buckets + 1)[1:-1])
            boundaries = sorted(set(np.round(quantiles, 6).tolist()))
        return NumericEncoder(
            key=self.key,
            embedding_dim=embedding_dim,
            mean=float(values.mean()),
            # A constant column has no scale: dividing by sqrt(1e-12) would blow any other
            # value up a million-fold (and past float32 range), so it is only centred.
            variance=float(values.var()) or 1.0,
            boundaries=boundaries,
            transform=self.transform,
            name=self.field_name,
        )

    def to_config(self) -> dict:
        return {"class": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class ItemSequence:
    """An ordered sequence of item ids (a user's history, newest last), kept as ``[B, L, k]``.

    Args:
      key: Input feature name (``[B, L']`` ids, left-padded with "").
      max_length: L, positions kept (the newest ones).
      shared_item_field: The candidate tower's item field whose vocabulary and table the
        sequence uses (tied item embeddings); None for a vocabulary of its own.
      name: Encoder name; defaults to `key`.
    """

    key: str
    max_length: int = 50
    shared_item_field: str | None = "movie_id"
    name: str | None = None

    @property
    def field_name(self) -> str:
        return self.name or self.key

    def build(self, table: dict, embedding_dim: int) -> SequenceEncoder:
        vocabulary = None
        if self.shared_item_field is None:
            vocabulary = frequency_vocabulary(np.asarray(_column(table, self.key)).astype(str))
        return SequenceEncoder(
            key=self.key,
            max_length=self.max_length,
            embedding_dim=embedding_dim,
            vocabulary=vocabulary,
            shared_item_field=self.shared_item_field,
            name=self.field_name,
        )

    def to_config(self) -> dict:
        return {"class": type(self).__name__, **asdict(self)}


_CLASSES = {c.__name__: c for c in (Categorical, MultiCategorical, Text, Numeric, ItemSequence)}


def column_from_config(config: dict):
    """Rebuilds a column from `to_config()` output (used by CLI config files)."""
    config = dict(config)
    name = config.pop("class", None)
    if name not in _CLASSES:
        raise ValueError(
            f"Unknown column class. Received: class={name!r}; expected one of {sorted(_CLASSES)}"
        )
    return _CLASSES[name](**config)

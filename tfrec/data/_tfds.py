"""Conversion of TFDS ``movielens/<variant>-ratings`` / ``-movies`` datasets into tfrec tables.

Why this exists: the ``tfds`` source lets machines that can only reach TFDS's mirrors use the
same tables as the GroupLens files. TFDS stores a joined, shuffled table, so this splits it back:
ratings keep TFDS's order (GroupLens file order is not recoverable from TFDS), movies come from
``-movies`` and users (100k/1m) are the distinct users of ``-ratings`` with their features.
Movies and users are sorted by id (numerically when every id is an integer).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data import schema
from tfrec.data.parsers import Tables, pad_lists

_BATCH = 4096  # ragged_batch has a per-batch cost growing with the batch size


def _decode(values: np.ndarray) -> np.ndarray:
    return np.strings.decode(np.asarray(values).astype(bytes), "utf-8")


def _columns(dataset: tf.data.Dataset, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Reads ``names`` from a TFDS-shaped dataset into numpy columns, batch by batch."""
    chunks: dict[str, list] = {name: [] for name in names}
    lengths = []
    for batch in dataset.ragged_batch(_BATCH):
        for name in names:
            value = batch[name]
            if isinstance(value, tf.RaggedTensor):
                chunks[name].append(value.flat_values.numpy())
                if name == "movie_genres":
                    lengths.append(value.row_lengths().numpy())
            else:
                chunks[name].append(value.numpy())
    columns = {}
    for name in names:
        spec = dataset.element_spec[name]
        data = np.concatenate(chunks[name]) if chunks[name] else np.zeros(0)
        if name == "movie_genres":
            row_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
            columns[name] = pad_lists(data.astype(np.int64), row_lengths)
        elif spec.dtype == tf.string:
            columns[name] = _decode(data)
        else:
            columns[name] = data.astype(spec.dtype.as_numpy_dtype)
    return columns


def sort_by_id(table: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    """Sorts a table by its id column: numerically if all ids are integers, else as text."""
    ids = table[key]
    numeric = ids.size > 0 and bool(np.strings.isdecimal(ids).all())
    order = np.argsort(ids.astype(np.int64) if numeric else ids, kind="stable")
    return {name: column[order] for name, column in table.items()}


def tables_from_tfds(ratings: tf.data.Dataset, movies: tf.data.Dataset, variant: str) -> Tables:
    """Turns TFDS ``-ratings`` and ``-movies`` datasets of ``variant`` into :class:`Tables`."""
    spec = schema.ratings_features(variant)
    missing = sorted(set(spec) - set(ratings.element_spec))
    if missing:
        raise ValueError(
            f"The TFDS ratings dataset lacks features of movielens/{variant}-ratings. "
            f"Received: missing={missing}. Fix: load movielens/{variant}-ratings."
        )
    user_columns = tuple(c for c in schema.USER_COLUMNS if c in spec)
    names = ("user_id", "movie_id", "user_rating", "timestamp") + user_columns[1:]
    columns = _columns(ratings, names)
    table = {name: columns[name] for name in ("user_id", "movie_id", "user_rating", "timestamp")}
    movie_table = sort_by_id(_columns(movies, tuple(schema.MOVIE_FEATURES)), "movie_id")
    users = None
    if variant in schema.VARIANTS_WITH_USERS:
        _, first = np.unique(columns["user_id"], return_index=True)
        users = sort_by_id({name: columns[name][first] for name in user_columns}, "user_id")
    return Tables(table, movie_table, users)

"""What a recommend signature ranks over and what it must leave out, captured at export time.

A served recommender needs more than the model: the catalogue of movies it may return (ids,
titles, popularity for the cold-start fallback) and, per user, the movies already seen in
training, which must never be recommended again. Both are prepared here once, vectorised with
numpy, and stored in a `tf.Module` (variables and a hash table) so that they travel inside the
SavedModel and TF Serving needs nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf


def as_strings(values, name: str) -> np.ndarray:
    """A 1-D array of ids as Python strings (ints, bytes and strings all accepted)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of ids. Received: {name}.shape={array.shape}"
        )
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    elif array.dtype.kind == "O" and array.size and isinstance(array[0], bytes):
        array = np.char.decode(array.astype(bytes), "utf-8")
    return array.astype(str)


def as_bytes(strings: np.ndarray) -> np.ndarray:
    """UTF-8 encoded ids or titles, as TensorFlow string tensors hold them."""
    return np.char.encode(np.asarray(strings, dtype=str), "utf-8")


def aligned(values, ids: np.ndarray, name: str, default) -> np.ndarray:
    """`values` as an array aligned with the catalogue `ids`.

    Accepts a mapping ``{movie_id: value}`` (ids missing from it get `default`) or an array of
    the catalogue's length, in catalogue order.
    """
    if isinstance(values, Mapping):
        lookup = {str(k.decode() if isinstance(k, bytes) else k): v for k, v in values.items()}
        return np.array([lookup.get(i, default) for i in ids.tolist()])
    array = np.asarray(values)
    if array.shape != (len(ids),):
        raise ValueError(
            f"`{name}` must be a mapping {{movie_id: value}} or an array with one entry per "
            f"catalogue movie ({len(ids)}, in the store's movie order). "
            f"Received: {name}.shape={array.shape}"
        )
    return array


def index_of(ids: np.ndarray, catalogue: np.ndarray, name: str) -> np.ndarray:
    """Position of each id in `catalogue`; raises naming an unknown id."""
    order = np.argsort(catalogue, kind="stable")
    pos = np.searchsorted(catalogue, ids, sorter=order)
    pos = np.minimum(pos, len(catalogue) - 1)
    index = order[pos]
    unknown = catalogue[index] != ids
    if unknown.any():
        raise ValueError(
            f"`{name}` holds ids that are not in the catalogue, e.g. "
            f"{ids[unknown][:3].tolist()} ({int(unknown.sum())} of {len(ids)}). Fix: build the "
            "FeatureStore with every movie the model was trained on."
        )
    return index.astype(np.int64)


def normalized_popularity(counts: np.ndarray) -> np.ndarray:
    """Item counts scaled to [0, 1] by the largest count: the cold-start "popular" scores."""
    counts = np.asarray(counts, dtype=np.float64)
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError(
            "`popularity` must hold finite counts >= 0. Received: "
            f"min={counts.min()}, max={counts.max()}"
        )
    top = counts.max() if counts.size else 0.0
    return (counts / top if top > 0 else np.zeros_like(counts)).astype(np.float32)


class SeenItems(tf.Module):
    """Per-user seen movies in CSR form, plus which users the export knows.

    Exists so that `recommend` can mask a user's training interactions with a few vectorised
    ops: a hash table maps a user id to a CSR row, and the row's catalogue indices are
    scattered into a ``[B, N]`` boolean mask. Users without a row (unknown users) map to an
    extra empty row, so masking never fails.

    Args:
      known_users: Every user id the export knows (store users, histories, interactions).
      seen_users: User id of each training interaction.
      seen_items: Catalogue index of each training interaction's movie.
      num_items: Catalogue size N.
    """

    def __init__(self, known_users, seen_users, seen_items, num_items: int):
        super().__init__(name="seen_items")
        known = np.unique(np.concatenate([as_strings(known_users, "known_users"), seen_users]))
        rows = np.searchsorted(known, seen_users)
        keys = np.unique(rows.astype(np.int64) * num_items + np.asarray(seen_items, np.int64))
        counts = np.bincount(keys // num_items, minlength=len(known) + 1)
        self.num_users = len(known)
        self.num_items = int(num_items)
        self.indptr = tf.Variable(
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            trainable=False,
            name="indptr",
        )
        self.indices = tf.Variable(keys % num_items, trainable=False, name="indices")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(as_bytes(known)), tf.range(len(known), dtype=tf.int64)
            ),
            default_value=len(known),
        )

    def rows(self, user_ids: tf.Tensor) -> tf.Tensor:
        """CSR row of each user id; unknown ids get the trailing empty row."""
        return self.table.lookup(user_ids)

    def known(self, user_ids: tf.Tensor) -> tf.Tensor:
        """Whether each user id was known at export time, ``[B]`` bool."""
        return self.rows(user_ids) < self.num_users

    def mask(self, user_ids: tf.Tensor) -> tf.Tensor:
        """``[B, N]`` bool: True where the movie is in the user's training interactions."""
        rows = self.rows(user_ids)
        positions = tf.ragged.range(tf.gather(self.indptr, rows), tf.gather(self.indptr, rows + 1))
        items = tf.gather(self.indices, positions.flat_values)
        coords = tf.stack([positions.value_rowids(), items], axis=1)
        shape = tf.stack([tf.shape(user_ids, out_type=tf.int64)[0], self.num_items])
        hits = tf.scatter_nd(coords, tf.ones_like(items, dtype=tf.int32), shape)
        return hits > 0


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """What an export knows about its movies and users, read once from a FeatureStore.

    Exists so that every exported module (the single-model recommender and the two-stage
    pipeline) validates `seen`, titles and popularity the same way and masks the same items.

    Attributes:
      ids: Movie ids in catalogue order (the store's movies table).
      titles: Title of each movie ("" where unknown).
      counts: Popularity count of each movie.
      seen: The per-user seen items, for masking.
      example_users: Up to two known user ids, for warmup requests.
    """

    ids: np.ndarray
    titles: np.ndarray
    counts: np.ndarray
    seen: SeenItems
    example_users: np.ndarray


def build_catalogue(store, seen, movie_titles=None, popularity=None) -> Catalogue:
    """A `Catalogue` from a FeatureStore and the ``(user_ids, movie_ids)`` pairs to exclude.

    Args:
      store: The `tfrec.features.FeatureStore` the export scores with; its movies table is
        the catalogue.
      seen: Pair ``(user_ids, movie_ids)`` of interactions never recommended back.
      movie_titles: ``{movie_id: title}`` or titles in catalogue order (default: the store's
        ``movie_title`` column, if any).
      popularity: ``{movie_id: count}`` or counts in catalogue order (default: from `seen`).
    """
    if not isinstance(seen, tuple | list) or len(seen) != 2:
        raise ValueError(
            "`seen` must be a pair (user_ids, movie_ids) of interactions to exclude. "
            f"Received: seen of type {type(seen).__name__}"
        )
    ids = as_strings(store.movie_ids.numpy(), "store movie ids")
    if len(ids) == 0:
        raise ValueError("The store's movies table is empty: there is nothing to recommend.")
    seen_users, seen_movies = as_strings(seen[0], "seen[0]"), as_strings(seen[1], "seen[1]")
    if len(seen_users) != len(seen_movies):
        raise ValueError(
            "`seen` user and movie ids must have the same length. Received: "
            f"{len(seen_users)} user ids and {len(seen_movies)} movie ids"
        )
    items = index_of(seen_movies, ids, "seen[1] (movie ids)")
    counts = (
        np.bincount(items, minlength=len(ids))
        if popularity is None
        else aligned(popularity, ids, "popularity", 0)
    )
    if movie_titles is None:
        column = store.movies.columns.get("movie_title") if store.movies is not None else None
        titles = np.full(len(ids), "") if column is None else column.numpy()[:-1]
    else:
        titles = aligned(movie_titles, ids, "movie_titles", "")
    tables = [t for t in (store.users, store.history) if t is not None]
    known = np.concatenate(
        [np.array([], str)] + [as_strings(t.ids.numpy(), "user ids") for t in tables]
    )
    return Catalogue(
        ids=ids,
        titles=as_strings(titles, "movie_titles"),
        counts=counts,
        seen=SeenItems(known, seen_users, items, len(ids)),
        example_users=np.unique(np.concatenate([known, seen_users]))[:2],
    )

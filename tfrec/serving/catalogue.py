"""What every exported module ranks over and leaves out, and the `recommend` they share.

A served recommender needs more than the model: the catalogue of movies it may return (ids,
titles, popularity for the cold-start fallback) and, per user, the movies already seen, which
must never be recommended again. `Catalogue` prepares them once, vectorised with numpy;
`CatalogueModule` stores them in variables and a hash table (they travel inside the SavedModel,
so TF Serving needs nothing else) and implements the ``recommend`` signature every tfrec export
has: k validation, seen-item exclusion, cold start for unknown users, and the output layout
(``movie_ids``, ``scores``, ``titles`` ``[B, k]``). The single-model recommender
(`tfrec.serving.module`) and the two-stage pipeline (`tfrec.pipeline`) differ only in how they
find a known user's best items (`top_k_known`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function
from tfrec.data.seen import SeenItems, SeenItemsLookup
from tfrec.retrieval.topk import check_k


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


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """What an export knows about its items and users, validated once.

    Attributes:
      ids: Item ids in catalogue order (the store's movies table).
      titles: Title of each item ("" where unknown).
      counts: Popularity count of each item (cold start).
      seen: Per-user seen items as a `SeenItemsLookup` keyed by raw user id.
    """

    ids: np.ndarray
    titles: np.ndarray
    counts: np.ndarray
    seen: SeenItemsLookup


def _store_titles(store, ids):
    column = store.movies.columns.get("movie_title") if store.movies is not None else None
    return np.full(len(ids), "") if column is None else column.numpy()[:-1]


def _known_users(store) -> np.ndarray:
    tables = [t for t in (store.users, store.history) if t is not None]
    return np.concatenate(
        [np.array([], str)] + [as_strings(t.ids.numpy(), "user ids") for t in tables]
    )


def build_catalogue(store, seen, movie_titles=None, popularity=None) -> Catalogue:
    """A `Catalogue` from a FeatureStore and the ``(user_ids, movie_ids)`` pairs to exclude.

    Args:
      store: The `tfrec.features.FeatureStore` the export scores with; its movies table is
        the catalogue, and its users / history tables list the users the export knows.
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
    titles = (
        _store_titles(store, ids)
        if movie_titles is None
        else aligned(movie_titles, ids, "movie_titles", "")
    )
    users, rows = np.unique(seen_users, return_inverse=True)
    table = SeenItems.from_pairs(rows.reshape(-1), items, max(len(users), 1), len(ids))
    if not len(users):
        users = np.array(["\x00no-user"])
    return Catalogue(
        ids=ids,
        titles=as_strings(titles, "movie_titles"),
        counts=counts,
        seen=table.lookup(users, known_users=_known_users(store)),
    )


class CatalogueModule(tf.Module):
    """Base of every exported module: the catalogue, seen items, cold start and `recommend`.

    Subclasses implement `top_k_known(user_id, k) -> (scores [B, k], items [B, k])` (catalogue
    indices, -1 and score -inf where fewer than k items remain) for users the export knows,
    with their seen items already left out, plus `more_signatures()` and `more_examples()`.

    Args:
      catalogue: The `Catalogue` (ids, titles, popularity, seen items).
      cold_start: "popular": users the export does not know get the most popular items,
        scored by normalized popularity; subclasses may offer more strategies.
      name: Module name.
    """

    COLD_START = ("popular",)

    def __init__(self, catalogue: Catalogue, cold_start="popular", name=None):
        super().__init__(name=name)
        if cold_start not in self.COLD_START:
            raise ValueError(
                f"`cold_start` must be one of {self.COLD_START}. Received: cold_start={cold_start!r}"
            )
        self.cold_start = cold_start
        self.num_items = len(catalogue.ids)
        self.seen = catalogue.seen
        self.catalogue_ids = tf.Variable(as_bytes(catalogue.ids), trainable=False, name="movie_ids")
        self.catalogue_titles = tf.Variable(
            as_bytes(catalogue.titles), trainable=False, name="titles"
        )
        scores = normalized_popularity(catalogue.counts)
        order = np.argsort(-scores, kind="stable")
        self.popular_items = tf.Variable(order.astype(np.int64), trainable=False, name="popular")
        self.popular_scores = tf.Variable(scores[order], trainable=False, name="popular_scores")
        self._example_users = as_strings(catalogue.seen.example_users, "example users")

    def top_k_known(self, user_id, k):
        raise NotImplementedError(f"{type(self).__name__} must implement top_k_known")

    def top_k_cold(self, user_id, k):
        """Scores and items for users the export does not know: the most popular items."""
        batch = tf.shape(user_id)[0]
        items = tf.tile(self.popular_items[None, :k], [batch, 1])
        return tf.tile(self.popular_scores[None, :k], [batch, 1]), items

    def outputs(self, scores, items) -> dict:
        """The ``recommend`` layout: ids, scores and titles ``[B, k]``, "" / 0 where empty."""
        found = items >= 0
        safe = tf.maximum(items, 0)
        return {
            "movie_ids": tf.where(found, tf.gather(self.catalogue_ids, safe), ""),
            "scores": tf.where(found, scores, 0.0),
            "titles": tf.where(found, tf.gather(self.catalogue_titles, safe), ""),
        }

    @signature_function
    def recommend(self, user_id, k):
        """Top-k unseen catalogue items per user; unknown users get the cold-start strategy."""
        k = tf.minimum(check_k(k), self.num_items)
        known = self.seen.known(user_id)[:, None]
        scores, items = self.top_k_known(user_id, k)
        cold_scores, cold_items = self.top_k_cold(user_id, k)
        items = tf.where(known, items, cold_items)
        scores = tf.where(known, scores, cold_scores)
        return self.outputs(scores, items)

    def signatures(self) -> dict:
        """Concrete functions for ``tf.saved_model.save(..., signatures=...)``, by name."""
        user = tf.TensorSpec([None], tf.string, name="user_id")
        k = tf.TensorSpec([], tf.int32, name="k")
        return {
            "recommend": self.recommend.get_concrete_function(user, k),
            **self.more_signatures(),
        }

    def more_signatures(self) -> dict:
        return {}

    def example_users(self) -> np.ndarray:
        """Up to two known users and one unknown, as UTF-8 bytes (for warmup requests)."""
        return as_bytes(np.concatenate([self._example_users, ["unknown-user"]]))

    def example_inputs(self) -> dict:
        """Small valid inputs for each signature (numpy), e.g. for warmup requests."""
        k = np.int32(min(10, self.num_items))
        return {"recommend": {"user_id": self.example_users(), "k": k}, **self.more_examples()}

    def more_examples(self) -> dict:
        return {}

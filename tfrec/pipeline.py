"""Two-stage recommendation in one SavedModel: retrieve with a two-tower index, rank, top-k.

Ranking models such as DeepFM score one (user, movie) pair per call, so ranking a catalogue
of 10^6 movies per request is out of reach; a two-tower model scores the whole catalogue with
one nearest-neighbour search. `TwoStagePipeline` chains them: the user's two-tower vector
retrieves N candidates from an in-graph index (exact `BruteForce` or approximate `IVFIndex`)
with the user's seen movies left out, the ranking model scores those N, and the best k are
returned. Everything (both models' state, the feature store, the index, the catalogue, seen
items and popularity) is inside the module, so the export is one SavedModel whose
``recommend`` signature follows the `tfrec.serving` contract and that stock TF Serving loads:
``user_id`` string [B], ``k`` int32 scalar -> ``movie_ids``, ``titles`` string [B, k] and
``scores`` float32 [B, k] (ranking probabilities), unknown users getting the most popular
movies (scored by normalised popularity).
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from tfrec.retrieval import BruteForce, IVFIndex
from tfrec.retrieval.topk import check_k, padded_top_k
from tfrec.serving.catalogue import as_bytes, build_catalogue, normalized_popularity
from tfrec.serving.export import export_module
from tfrec.serving.module import model_state

INDEX_KINDS = ("brute_force", "ivf")


class TwoStagePipeline(tf.Module):
    """Retrieve N candidates with a two-tower index, rank them, return the top k unseen.

    Args:
      retrieval_model: A trained `tfrec.models.TwoTower` (gives user and movie vectors).
      ranking_model: A trained ranking model (`call(features) -> logits [B]`, e.g. DeepFM).
      store: `tfrec.features.FeatureStore` with the side features both models read; its
        movies table is the catalogue.
      seen: ``(user_ids, movie_ids)`` interactions never to recommend again (and the users
        the export knows; others get the cold-start list).
      num_candidates: N, the candidates retrieved per user (at least k are always used).
      index: "brute_force" (exact), "ivf" (approximate), or a built `BruteForce` /
        `IVFIndex` over the catalogue's `retrieval_model.movie_vectors`.
      nprobe: IVF cells scanned per query.
      nlist: IVF cells (default about 2 sqrt(N)).
      movie_titles: ``{movie_id: title}`` or titles in catalogue order (default: store's).
      popularity: ``{movie_id: count}`` or counts in catalogue order (default: from `seen`).

    Example:
      >>> pipeline = TwoStagePipeline(two_tower, deepfm, store, seen, num_candidates=100)
      >>> pipeline.recommend(tf.constant(["196"]), tf.constant(10))["movie_ids"]
      >>> export_pipeline(pipeline, "saved_models", name="two_stage")
    """

    def __init__(
        self,
        retrieval_model,
        ranking_model,
        store,
        seen,
        num_candidates=100,
        index="brute_force",
        nprobe=32,
        nlist=None,
        movie_titles=None,
        popularity=None,
    ):
        super().__init__(name="two_stage")
        for method in ("user_vectors", "movie_vectors"):
            if not callable(getattr(retrieval_model, method, None)):
                raise TypeError(
                    f"`retrieval_model` must be a two-tower model with `{method}` (e.g. "
                    f"tfrec.models.TwoTower). Received: {type(retrieval_model).__name__}"
                )
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
            raise ValueError(f"`num_candidates` must be an integer. Received: {num_candidates!r}")
        if num_candidates < 1:
            raise ValueError(f"`num_candidates` must be >= 1. Received: {num_candidates}")
        self._keras = types.SimpleNamespace(retrieval=retrieval_model, ranking=ranking_model)
        self.store = store
        catalogue = build_catalogue(store, seen, movie_titles, popularity)
        self.num_items = len(catalogue.ids)
        self.num_candidates = min(num_candidates, self.num_items)
        self.seen = catalogue.seen
        self.catalogue_ids = tf.Variable(as_bytes(catalogue.ids), trainable=False, name="movie_ids")
        self.catalogue_titles = tf.Variable(
            as_bytes(catalogue.titles), trainable=False, name="titles"
        )
        scores = normalized_popularity(catalogue.counts)
        order = np.argsort(-scores, kind="stable")
        self.popular_items = tf.Variable(order.astype(np.int64), trainable=False, name="popular")
        self.popular_scores = tf.Variable(scores[order], trainable=False, name="popular_scores")
        self._example_users = catalogue.example_users
        # Eager calls build models that were never called, so all their state exists now.
        retrieval_model.user_vectors(store.join({"user_id": tf.constant([""])}))
        ranking_model(self._candidate_features(tf.constant([""]), tf.constant([[0]], tf.int64)))
        self.index = self._build_index(index, nlist, nprobe)
        self.nprobe = nprobe
        self.model_state = model_state(retrieval_model) + model_state(ranking_model)

    @property
    def retrieval_model(self):
        """The two-tower Keras model (its state is saved, the Keras object is not)."""
        return self._keras.retrieval

    @property
    def ranking_model(self):
        """The ranking Keras model (its state is saved, the Keras object is not)."""
        return self._keras.ranking

    def catalogue_vectors(self, batch_size=65536) -> np.ndarray:
        """`movie_vectors` of the whole catalogue, ``[N, d]``, computed in chunks."""
        ids = self.catalogue_ids.numpy()
        chunks = [
            self.retrieval_model.movie_vectors(
                self.store.join({"movie_id": tf.constant(ids[i : i + batch_size])})
            ).numpy()
            for i in range(0, len(ids), batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def _build_index(self, index, nlist, nprobe):
        if isinstance(index, BruteForce | IVFIndex):
            if index.num_items != self.num_items:
                raise ValueError(
                    f"The index holds {index.num_items} vectors but the catalogue has "
                    f"{self.num_items} movies. Fix: build it over the catalogue's movie vectors."
                )
            return index
        if index not in INDEX_KINDS:
            raise ValueError(
                f"`index` must be one of {INDEX_KINDS} or an index. Received: {index!r}"
            )
        vectors = self.catalogue_vectors()
        if index == "brute_force":
            return BruteForce(vectors, name="index")
        return IVFIndex(vectors, nlist=nlist, nprobe=nprobe, name="index")

    def _seen_matrix(self, user_id):
        """``[B, S]`` catalogue indices each user has seen, -1 padded."""
        rows = self.seen.rows(user_id)
        positions = tf.ragged.range(
            tf.gather(self.seen.indptr, rows), tf.gather(self.seen.indptr, rows + 1)
        )
        return tf.gather(self.seen.indices, positions).to_tensor(default_value=-1)

    def _candidate_features(self, user_id, items):
        """Ranking features of each (user, candidate) pair, ``B * C`` rows, user-major."""
        users = self.store.join({"user_id": user_id})
        count = tf.shape(items)[1]
        flat = tf.reshape(tf.maximum(items, 0), [-1])
        features = {key: tf.repeat(value, count, axis=0) for key, value in users.items()}
        features.update(self.store.movies.gather(flat, exclude=("movie_id",)))
        features["movie_id"] = tf.gather(self.catalogue_ids, flat)
        return features

    def retrieve(self, user_id, n, nprobe=None):
        """Stage one: ``(retrieval scores [B, n], catalogue indices [B, n])``, seen left out."""
        queries = self.retrieval_model.user_vectors(self.store.join({"user_id": user_id}))
        exclude = self._seen_matrix(user_id)
        if isinstance(self.index, IVFIndex):
            nprobe = self.nprobe if nprobe is None else nprobe
            return self.index.search(queries, n, nprobe, exclude=exclude)
        return self.index.search(queries, n, exclude=exclude)

    def rank(self, user_id, items):
        """Stage two: ranking probabilities ``[B, C]`` of candidate indices (-inf where -1)."""
        logits = self.ranking_model(self._candidate_features(user_id, items), training=False)
        probabilities = tf.reshape(tf.sigmoid(tf.cast(logits, tf.float32)), tf.shape(items))
        return tf.where(items >= 0, probabilities, float("-inf"))

    @tf.function
    def recommend(self, user_id, k):
        """Top-k unseen movies per user: retrieve max(N, k), rank, keep k; cold start popular."""
        k = tf.minimum(check_k(k), self.num_items)
        _, candidates = self.retrieve(user_id, tf.maximum(k, self.num_candidates))
        top, items = padded_top_k(self.rank(user_id, candidates), candidates, k)
        known = self.seen.known(user_id)[:, None]
        batch = tf.shape(user_id)[0]
        cold_items = tf.tile(self.popular_items[None, :k], [batch, 1])
        cold_scores = tf.tile(self.popular_scores[None, :k], [batch, 1])
        items = tf.where(known, items, cold_items)
        top = tf.where(known, top, cold_scores)
        found = items >= 0
        safe = tf.maximum(items, 0)
        return {
            "movie_ids": tf.where(found, tf.gather(self.catalogue_ids, safe), ""),
            "scores": tf.where(found, top, 0.0),
            "titles": tf.where(found, tf.gather(self.catalogue_titles, safe), ""),
        }

    @tf.function
    def candidates(self, user_id, n, nprobe):
        """Stage one alone: ``movie_ids`` and two-tower ``scores`` of n candidates per user."""
        scores, items = self.retrieve(user_id, tf.minimum(check_k(n, "n"), self.num_items), nprobe)
        found = items >= 0
        return {
            "movie_ids": tf.where(found, tf.gather(self.catalogue_ids, tf.maximum(items, 0)), ""),
            "scores": tf.where(found, scores, 0.0),
        }

    def signatures(self) -> dict:
        """``recommend`` (the serving contract) and ``candidates`` (retrieval only)."""
        user = tf.TensorSpec([None], tf.string, name="user_id")
        scalar = tf.TensorSpec([], tf.int32)
        return {
            "recommend": self.recommend.get_concrete_function(user, scalar),
            "candidates": self.candidates.get_concrete_function(user, scalar, scalar),
        }

    def example_inputs(self) -> dict:
        """Small valid inputs per signature (numpy), for warmup requests."""
        users = as_bytes(np.concatenate([self._example_users, ["unknown-user"]]))
        k = np.int32(min(10, self.num_items))
        return {
            "recommend": {"user_id": users, "k": k},
            "candidates": {"user_id": users, "n": k, "nprobe": np.int32(self.nprobe)},
        }


def export_pipeline(pipeline, base_dir="saved_models", name="two_stage", warmup=True):
    """Exports `pipeline` as the next version of ``<base_dir>/<name>`` for TF Serving.

    Written to a hidden temporary directory and renamed to its integer version only when
    complete (with warmup requests); ``<base_dir>/models.config`` is then rewritten.
    Returns the version directory.
    """
    return export_module(pipeline, base_dir, name, warmup)

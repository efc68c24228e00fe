"""Two-stage recommendation in one SavedModel: retrieve with a dot-product model, rank, top-k.

A ranking model such as DeepFM scores (user, item) pairs, so ranking a catalogue of 10^6 items
per request is out of reach; a dot-product model (two-tower, a sequence encoder) scores the
whole catalogue with one nearest-neighbour search. `TwoStagePipeline` chains them: the user's
query vector retrieves N candidates from an in-graph index (exact `BruteForce` or approximate
`IVFIndex`) with the user's seen items left out, the ranking model scores those N through the
model contract (its candidate encodings computed once at export), and the best k are returned.
Everything is inside the module, so the export is one SavedModel whose ``recommend`` signature
follows the `tfrec.serving` contract (`CatalogueModule`), loadable by stock TF Serving. For
offline jobs the same ranking runs on candidates from any index (FAISS, ScaNN):
`rank_candidates`.
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function
from tfrec.models.base import encode_catalogue
from tfrec.retrieval import BruteForce, IVFIndex
from tfrec.retrieval.topk import check_k, padded_top_k
from tfrec.serving.catalogue import CatalogueModule, build_catalogue
from tfrec.serving.export import export_module
from tfrec.serving.module import check_model, frozen, model_state

INDEX_KINDS = ("brute_force", "ivf")


class TwoStagePipeline(CatalogueModule):
    """Retrieve N candidates with a dot-product model's index, rank them, return the top k.

    Args:
      retrieval_model: A trained tfrec model with ``dot_product = True`` (e.g. `TwoTower`):
        its encodings carry the ``vector`` an index searches.
      ranking_model: A trained tfrec model (e.g. DeepFM) that ranks the candidates.
      store: `tfrec.features.FeatureStore` with the side features both models read; its
        movies table is the catalogue.
      seen: ``(user_ids, movie_ids)`` interactions never to recommend again (and the users
        the export knows; others get the most popular items).
      num_candidates: N, the candidates retrieved per user (at least k are always used).
      index: "brute_force" (exact), "ivf" (approximate), or a built `BruteForce` /
        `IVFIndex` over the catalogue's retrieval vectors.
      nprobe: IVF cells scanned per query.
      nlist: IVF cells (default about 2 sqrt(N)).
      movie_titles: ``{movie_id: title}`` or titles in catalogue order (default: store's).
      popularity: ``{movie_id: count}`` or counts in catalogue order (default: from `seen`).

    Example:
      >>> pipeline = TwoStagePipeline(two_tower, deepfm, store, seen, num_candidates=100)
      >>> pipeline.recommend(tf.constant(["196"]), tf.constant(10))["movie_ids"]
      >>> export_pipeline(pipeline, "saved_models", name="two_stage")
    """

    def __init__(self, retrieval_model, ranking_model, store, seen, num_candidates=100,
                 index="brute_force", nprobe=32, nlist=None, movie_titles=None,
                 popularity=None):  # fmt: skip
        check_model(retrieval_model)
        check_model(ranking_model)
        if not getattr(retrieval_model, "dot_product", False):
            raise TypeError(
                "`retrieval_model` must score by a dot product of query and candidate vectors "
                f"(dot_product = True, e.g. tfrec.models.TwoTower). Received: "
                f"{type(retrieval_model).__name__}"
            )
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
            raise ValueError(f"`num_candidates` must be an integer. Received: {num_candidates!r}")
        if num_candidates < 1:
            raise ValueError(f"`num_candidates` must be >= 1. Received: {num_candidates}")
        super().__init__(build_catalogue(store, seen, movie_titles, popularity), name="two_stage")
        self._keras = types.SimpleNamespace(retrieval=retrieval_model, ranking=ranking_model)
        self.store = store
        self.num_candidates = min(num_candidates, self.num_items)
        items = store.join({"movie_id": tf.identity(self.catalogue_ids)})
        one = store.join({"user_id": tf.constant([""]), "movie_id": self.catalogue_ids[:1]})
        for model in (retrieval_model, ranking_model):  # builds models that were never called
            model(one, training=False)
        self.ranking_candidates = frozen(encode_catalogue(ranking_model, items))
        self.nprobe = nprobe
        self.index = self._build_index(index, nlist, nprobe, retrieval_model, items)
        self.model_state = model_state(retrieval_model) + model_state(ranking_model)

    @property
    def retrieval_model(self):
        """The retrieval Keras model (its state is saved, the Keras object is not)."""
        return self._keras.retrieval

    @property
    def ranking_model(self):
        """The ranking Keras model (its state is saved, the Keras object is not)."""
        return self._keras.ranking

    def _build_index(self, index, nlist, nprobe, model, items):
        if isinstance(index, BruteForce | IVFIndex):
            if index.num_items != self.num_items:
                raise ValueError(
                    f"The index holds {index.num_items} vectors but the catalogue has "
                    f"{self.num_items} items. Fix: build it over `catalogue_vectors()`."
                )
            return index
        if index not in INDEX_KINDS:
            raise ValueError(
                f"`index` must be one of {INDEX_KINDS} or an index. Received: {index!r}"
            )
        vectors = encode_catalogue(model, items)["vector"].numpy()
        if index == "brute_force":
            return BruteForce(vectors, name="index")
        return IVFIndex(vectors, nlist=nlist, nprobe=nprobe, name="index")

    # ---------------------------------------------------------------- stages

    def catalogue_vectors(self) -> np.ndarray:
        """The retrieval model's vector of every catalogue item, ``[N, d]`` (for offline
        indexes such as `tfrec.retrieval.FaissIndex` or `ScannIndex`)."""
        items = self.store.join({"movie_id": tf.identity(self.catalogue_ids)})
        return encode_catalogue(self.retrieval_model, items)["vector"].numpy()

    def query_vectors(self, user_id) -> tf.Tensor:
        """The retrieval model's vector of each user, ``[B, d]``."""
        features = self.store.join({"user_id": user_id})
        return self.retrieval_model.encode_query(features, training=False)["vector"]

    def retrieve(self, user_id, n, nprobe=None):
        """Stage one: ``(retrieval scores [B, n], catalogue indices [B, n])``, seen left out."""
        queries = self.query_vectors(user_id)
        exclude = self.seen.matrix(user_id)
        if isinstance(self.index, IVFIndex):
            nprobe = self.nprobe if nprobe is None else nprobe
            return self.index.search(queries, n, nprobe, exclude=exclude)
        return self.index.search(queries, n, exclude=exclude)

    def rank(self, user_id, items):
        """Stage two: ranking scores ``[B, C]`` of candidate indices (-inf where -1)."""
        model = self.ranking_model
        query = model.encode_query(self.store.join({"user_id": user_id}), training=False)
        logits = model.score_gathered(query, self.ranking_candidates, tf.maximum(items, 0))
        scores = tf.cast(model.task.activation(logits), tf.float32)
        return tf.where(items >= 0, scores, float("-inf"))

    def top_k_known(self, user_id, k):
        _, candidates = self.retrieve(user_id, tf.maximum(k, self.num_candidates))
        return padded_top_k(self.rank(user_id, candidates), candidates, k)

    def rank_candidates(self, user_ids, candidates, k: int = 10):
        """Offline stage two: the top-k of each user's own `candidates` (catalogue indices
        ``[B, C]``, -1 padded, e.g. from a FAISS or ScaNN search over `catalogue_vectors`),
        seen items left out. Returns numpy ``(scores [B, k], indices [B, k])``."""
        user_id = tf.constant(np.asarray(user_ids).astype(bytes))
        items = tf.constant(np.asarray(candidates, np.int64))
        seen = self.seen.mask(user_id)
        hit = tf.gather(seen, tf.maximum(items, 0), batch_dims=1) & (items >= 0)
        items = tf.where(hit, tf.constant(-1, tf.int64), items)
        scores, found = padded_top_k(self.rank(user_id, items), items, k)
        return scores.numpy(), found.numpy()

    @signature_function
    def candidates(self, user_id, n, nprobe):
        """Stage one alone: ``movie_ids`` and retrieval ``scores`` of n candidates per user."""
        scores, items = self.retrieve(user_id, tf.minimum(check_k(n, "n"), self.num_items), nprobe)
        found = items >= 0
        return {
            "movie_ids": tf.where(found, tf.gather(self.catalogue_ids, tf.maximum(items, 0)), ""),
            "scores": tf.where(found, scores, 0.0),
        }

    def more_signatures(self) -> dict:
        user = tf.TensorSpec([None], tf.string, name="user_id")
        scalar = tf.TensorSpec([], tf.int32)
        return {"candidates": self.candidates.get_concrete_function(user, scalar, scalar)}

    def more_examples(self) -> dict:
        k = np.int32(min(10, self.num_items))
        return {
            "candidates": {"user_id": self.example_users(), "n": k, "nprobe": np.int32(self.nprobe)}
        }


def export_pipeline(pipeline, base_dir="saved_models", name="two_stage", warmup=True):
    """Exports `pipeline` as the next version of ``<base_dir>/<name>`` for TF Serving.

    Written to a hidden temporary directory and renamed to its integer version only when
    complete (with warmup requests); ``<base_dir>/models.config`` is then rewritten.
    Returns the version directory.
    """
    return export_module(pipeline, base_dir, name, warmup)

"""The `tf.Module` a tfrec model is exported as, and its serving signatures.

TFRS's usual export (a Keras model saved as is, or a BruteForce index) leaves TF Serving with
inputs named ``input_1``, outputs named ``output_1``, a ``k`` frozen at save time and no way to
leave out what the user already saw. `RecommenderModule` fixes each of these for any
`tfrec.models.Recommender`, through the model contract alone: the candidate side of the whole
catalogue is encoded once at export and stored; a request encodes its users and scores them
with the model's `score_all`. Signatures:

* ``serving_default``: ``user_id``, ``movie_id`` ``[B]`` -> ``score`` ``[B]`` (the task's served
  score: a probability for ranking models);
* ``score_features``: the same from explicit side features (users unknown to the store);
* ``recommend``: ``user_id`` ``[B]``, ``k`` scalar -> ``movie_ids``, ``scores``, ``titles``
  ``[B, k]`` (see `tfrec.serving.catalogue.CatalogueModule`);
* ``recommend_sequence`` (models that read a history, e.g. SASRec or DeepFM): ``movie_ids``
  ``[B, L]`` (a live session's items, oldest first, "" left-padded) and ``k`` -> the same
  outputs, for users the export does not know; the session's own items are left out.
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models.base import Recommender, encode_catalogue
from tfrec.retrieval.topk import check_k, padded_top_k
from tfrec.serving.catalogue import CatalogueModule, as_bytes
from tfrec.training.distribute import ordinary_copy

SIGNATURES = ("serving_default", "score_features", "recommend")
PAIRS_PER_STEP = 8192
"""User-item pairs `recommend` scores per step (a few users times the catalogue)."""
_IDS = ("user_id", "movie_id")


def model_state(model) -> list:
    """The variables and resources (vocabulary lookup tables) the model's forward pass reads.

    The export tracks these rather than the Keras model itself: Keras' own SavedModel
    serialization traces every layer's call (dozens of functions TF Serving never runs),
    which would make the export about three times slower to write and load.
    """
    resources = [
        obj
        for obj in tf.train.TrackableView(model).descendants()
        if isinstance(obj, tf.saved_model.experimental.TrackableResource)
    ]
    return list(model.variables) + resources


def _columns(table) -> dict:
    return {} if table is None else dict(table.columns)


def frozen(encoding):
    """An encoding stored as non-trainable variables (saved in the SavedModel)."""
    return tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False), encoding)


def checked_inputs(inputs: dict, signature: str) -> dict:
    """`inputs` behind graph checks at the signature boundary, with errors naming the input.

    Every input must have the batch size of ``user_id`` (otherwise the mismatch surfaces deep
    in the model as an error about an internal node such as ``deep_fm/concat_1``), and float
    features must not be +-inf (it would be scored silently, as an extreme value). NaN stays
    allowed: it is tfrec's "missing" value (the store's row for unknown users holds it, and
    numeric encoders give it a bucket of its own, or the training mean). The checks run one
    after the other, so a request with several faults always reports the same one.
    """
    reference = "user_id" if "user_id" in inputs else sorted(inputs)[0]
    batch = tf.shape(inputs[reference])[0]
    names = sorted(inputs)
    checks = []

    def check(condition, data, name):
        with tf.control_dependencies(checks[-1:]):
            checks.append(tf.debugging.Assert(condition, data, name=name))

    for name in names:
        rows = tf.shape(inputs[name])[0]
        check(tf.equal(rows, batch),
              [f"{signature}: input `{name}` has", rows, f"rows but `{reference}` has", batch,
               "rows. Fix: send one row per (user, movie) pair in every input."],
              f"check_batch_{name}")  # fmt: skip
    for name in names:
        if inputs[name].dtype.is_floating:
            infinite = tf.math.is_inf(inputs[name])
            check(tf.logical_not(tf.reduce_any(infinite)),
                  [f"{signature}: input `{name}` must not be inf or -inf (send NaN for a "
                   "missing value). Received:", tf.boolean_mask(inputs[name], infinite)],
                  f"check_finite_{name}")  # fmt: skip
    with tf.control_dependencies(checks[-1:]):
        return {name: tf.identity(value) for name, value in inputs.items()}


def check_model(model) -> None:
    if not isinstance(model, Recommender):
        raise TypeError(
            "`model` must be a tfrec model (a tfrec.models.Recommender, e.g. from "
            f"tfrec.models.build_model). Received: model={type(model).__name__}"
        )


class RecommenderModule(CatalogueModule):
    """A model, its feature store, catalogue and seen items, ready for TF Serving.

    Exists so that a SavedModel answers by id alone: side features, histories, the encoded
    catalogue, titles and the items to exclude are all inside it. Save it with
    ``tf.saved_model.save(module, path, signatures=module.signatures())`` (`export_model`
    does this atomically, with versioning and warmup requests).

    Args:
      model: A trained `tfrec.models.Recommender` (called at least once).
      store: The `tfrec.features.FeatureStore` to join side features and histories from.
      catalogue: The `tfrec.serving.catalogue.Catalogue` (the store's movies, seen items).
      cold_start: "popular" (unknown users get the most popular items, scored by normalized
        popularity) or "average_user" (scored by the model with the store's missing-row user
        features; every unknown user gets the same list).
    """

    COLD_START = ("popular", "average_user")

    def __init__(self, model, store, catalogue, cold_start="popular"):
        super().__init__(catalogue, cold_start, name="recommender")
        check_model(model)
        ids = tf.constant(as_bytes(catalogue.ids))
        example = store.join({"user_id": tf.constant([""]), "movie_id": ids[:1]})
        # Trained under a tf.distribute strategy (mirrored or sharded variables): export an
        # ordinary copy, whose variables save as plain tensors.
        model = ordinary_copy(model, example)
        self._keras = types.SimpleNamespace(model=model)  # not tracked: see model_state
        self.store = store
        self._check_features()
        # One eager call builds a model that was never called, so all its state exists now.
        model.score(example)
        self.model_state = model_state(model)
        items = store.join({"movie_id": ids})
        self.candidates = frozen(encode_catalogue(model, items))
        self.item_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ids, tf.range(self.num_items, dtype=tf.int64)),
            default_value=-1,
        )

    @property
    def model(self):
        """The Keras model (its state is saved; the Keras object itself is not)."""
        return self._keras.model

    # ---------------------------------------------------------------- features and specs

    def _side_columns(self) -> tuple[dict, dict]:
        user = {**_columns(self.store.users), **_columns(self.store.history)}
        return user, _columns(self.store.movies)

    def _feature_keys(self) -> list[str]:
        model = self.model
        keys = set(model.query_keys) | set(model.candidate_keys)
        keys |= set(getattr(model, "raw_query_keys", ())) | set(
            getattr(model, "raw_candidate_keys", ())
        )
        return sorted(keys)

    def _check_features(self) -> None:
        user, movie = self._side_columns()
        missing = sorted(set(self._feature_keys()) - set(user) - set(movie) - set(_IDS))
        if missing:
            raise ValueError(
                f"The model reads features {missing} that the FeatureStore does not provide "
                f"(users/history: {sorted(user)}, movies: {sorted(movie)}). Fix: build the "
                "store from tables with these columns (and the model's history_length)."
            )

    def feature_specs(self) -> dict:
        """Input specs of `score_features`: ids plus each feature the model reads."""
        user, movie = self._side_columns()
        columns = {**user, **movie}
        specs = {key: tf.TensorSpec([None], tf.string, name=key) for key in _IDS}
        for key in self._feature_keys():
            if key not in _IDS:
                column = columns[key]
                specs[key] = tf.TensorSpec([None] * column.shape.rank, column.dtype, name=key)
        return specs

    @property
    def reads_history(self) -> bool:
        """Whether the model reads the user's history (so sessions can be served by it)."""
        return bool(self.model.history_length) and RECENT_MOVIES in self._feature_keys()

    def more_signatures(self) -> dict:
        user = tf.TensorSpec([None], tf.string, name="user_id")
        movie = tf.TensorSpec([None], tf.string, name="movie_id")
        out = {
            "serving_default": self.score_ids.get_concrete_function(user, movie),
            "score_features": self.score_features.get_concrete_function(self.feature_specs()),
        }
        if self.reads_history:
            session = tf.TensorSpec([None, None], tf.string, name="movie_ids")
            k = tf.TensorSpec([], tf.int32, name="k")
            out["recommend_sequence"] = self.recommend_sequence.get_concrete_function(session, k)
        return out

    def more_examples(self) -> dict:
        users = self.example_users()
        movies = np.resize(self.catalogue_ids.numpy(), len(users))
        joined = self.store.join({"user_id": tf.constant(users), "movie_id": tf.constant(movies)})
        specs = self.feature_specs()
        out = {
            "serving_default": {"user_id": users, "movie_id": movies},
            "score_features": {
                key: np.asarray(joined[key], dtype=spec.dtype.as_numpy_dtype)
                for key, spec in specs.items()
            },
        }
        if self.reads_history:
            session = np.asarray(joined[RECENT_MOVIES])
            out["recommend_sequence"] = {
                "movie_ids": session,
                "k": np.int32(min(10, self.num_items)),
            }
        return out

    # ---------------------------------------------------------------- signatures

    @signature_function
    def score_ids(self, user_id, movie_id):
        """Served score of each (user_id, movie_id) pair, side features joined from the store."""
        ids = checked_inputs({"user_id": user_id, "movie_id": movie_id}, "serving_default")
        features = self.store.join(ids)
        return {"score": tf.cast(self.model.score(features), tf.float32)}

    @signature_function
    def score_features(self, features):
        """Served score of each pair from explicit side features (users unknown to the store)."""
        features = checked_inputs(dict(features), "score_features")
        return {"score": tf.cast(self.model.score(features), tf.float32)}

    def _top_k(self, features, exclude, k):
        """Top-k over the encoded catalogue of a block of queries, `exclude` ``[b, N]`` masked."""
        model = self.model
        query = model.encode_query(features, training=False)
        logits = model.score_all(query, self.candidates, training=False)
        scores = tf.cast(model.task.activation(logits), tf.float32)
        return padded_top_k(tf.where(exclude, float("-inf"), scores), None, k)

    def _user_block(self, user_id, k):
        features = self.store.join({"user_id": user_id})
        return self._top_k(features, self.seen.mask(user_id), k)

    def _session_block(self, movie_ids, k):
        batch = tf.shape(movie_ids)[0]
        features = self.store.join({"user_id": tf.fill([batch], "")})
        features[RECENT_MOVIES] = movie_ids
        index = self.item_index.lookup(movie_ids)
        rows = tf.repeat(tf.range(batch, dtype=tf.int64), tf.shape(movie_ids)[1])
        flat = tf.reshape(index, [-1])
        keep = flat >= 0
        coords = tf.stack([tf.boolean_mask(rows, keep), tf.boolean_mask(flat, keep)], axis=1)
        shape = tf.cast(tf.stack([batch, self.num_items]), tf.int64)
        hits = tf.scatter_nd(coords, tf.ones(tf.shape(coords)[:1], tf.int32), shape)
        return self._top_k(features, hits > 0, k)

    @signature_function
    def recommend_sequence(self, movie_ids, k):
        """Top-k for live sessions given as item sequences; the session's items are left out."""
        k = tf.minimum(check_k(k), self.num_items)
        scores, items = self._blocks(movie_ids, k, self._session_block)
        return self.outputs(scores, items)

    def top_k_known(self, user_id, k):
        return self._blocks(user_id, k, self._user_block)

    def _blocks(self, rows, k, block_fn):
        """Scores a few rows at a time (about `PAIRS_PER_STEP` pairs per step): memory stays
        bounded for any batch and the activations stay small enough for the CPU cache."""
        batch = tf.shape(rows)[0]
        step = max(1, PAIRS_PER_STEP // self.num_items)
        # An empty request scores one placeholder user, sliced off below: an empty TensorArray
        # of [?, k] blocks cannot be concatenated, and models need not score empty batches.
        placeholder = tf.fill(tf.concat([[1], tf.shape(rows)[1:]], 0), "")
        padded = tf.concat([rows, placeholder], axis=0)[: tf.maximum(batch, 1)]
        starts = tf.range(0, tf.shape(padded)[0], step)

        def block(i, scores, items):
            top, found = block_fn(padded[starts[i] : starts[i] + step], k)
            return i + 1, scores.write(i, top), items.write(i, found)

        empty = (tf.TensorArray(tf.float32, size=tf.size(starts), infer_shape=False),
                 tf.TensorArray(tf.int64, size=tf.size(starts), infer_shape=False))  # fmt: skip
        _, scores, items = tf.while_loop(
            lambda i, *_: i < tf.size(starts), block, (tf.constant(0), *empty)
        )
        scores = tf.reshape(scores.concat(), [-1, k])[:batch]
        return scores, tf.reshape(items.concat(), [-1, k])[:batch]

    def top_k_cold(self, user_id, k):
        if self.cold_start == "average_user":
            return self.top_k_known(tf.fill(tf.shape(user_id), ""), k)
        return super().top_k_cold(user_id, k)

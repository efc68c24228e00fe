"""The `tf.Module` a tfrec SavedModel is made of, and its three serving signatures.

TFRS's usual export (a Keras model saved as is, or a BruteForce index) leaves TF Serving with
inputs named ``input_1``, outputs named ``output_1``, a ``k`` frozen at save time and no way to
leave out what the user already saw. `ServingModule` fixes each of these: it holds the model's
variables and lookup tables, the feature store, the catalogue and the seen items, and exposes

* ``serving_default``: ``user_id``, ``movie_id`` ``[B]`` -> ``score`` ``[B]`` (probability);
* ``score_features``: the same plus every side feature the towers read -> ``score``;
* ``recommend``: ``user_id`` ``[B]``, ``k`` scalar -> ``movie_ids``, ``scores``, ``titles``
  ``[B, k]``, with the user's training interactions masked and a cold-start strategy for
  users the export does not know.
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from tfrec.models.base import RankingModel
from tfrec.models.fast_scoring import cross_logits, side_parts, supports_fast_scoring
from tfrec.serving.catalogue import as_bytes, build_catalogue, normalized_popularity

COLD_START_STRATEGIES = ("popular", "average_user")
SIGNATURES = ("serving_default", "score_features", "recommend")
PAIRS_PER_STEP = 8192
"""User-movie pairs `recommend` scores per step (a few users times the catalogue)."""
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


class ServingModule(tf.Module):
    """A ranking model, its feature store, catalogue and seen items, ready for TF Serving.

    Exists so that a SavedModel answers by id alone: side features, history, catalogue,
    titles and the items to exclude are all inside it. Save it with
    ``tf.saved_model.save(module, path, signatures=module.signatures())`` (`export_model`
    does this atomically, with versioning and warmup requests).

    Args:
      model: A `tfrec.models.base.RankingModel` (already trained or at least called once).
      store: The `tfrec.features.store.FeatureStore` to join side features from; its movies
        table is the catalogue `recommend` ranks.
      seen: ``(user_ids, movie_ids)`` of the training interactions, excluded per user.
      movie_titles: ``{movie_id: title}`` or an array in catalogue order; defaults to the
        store's ``movie_title`` column (or "" when it has none).
      cold_start: "popular" (unknown users get the most popular movies, scored by
        normalized popularity) or "average_user" (scored by the model with the store's
        missing-row user features; every unknown user gets the same list).
      popularity: ``{movie_id: count}`` or counts in catalogue order; defaults to each
        movie's number of interactions in `seen`.
    """

    def __init__(
        self, model, store, seen, movie_titles=None, cold_start="popular", popularity=None
    ):
        super().__init__(name="recommender")
        if not isinstance(model, RankingModel):
            raise TypeError(
                "`model` must be a tfrec RankingModel (e.g. from tfrec.models.build_model). "
                f"Received: model={type(model).__name__}"
            )
        if cold_start not in COLD_START_STRATEGIES:
            raise ValueError(
                f"`cold_start` must be one of {COLD_START_STRATEGIES}. "
                f"Received: cold_start={cold_start!r}"
            )
        self._keras = types.SimpleNamespace(model=model)  # not tracked: see model_state
        self.store = store
        self.cold_start = cold_start
        catalogue = build_catalogue(store, seen, movie_titles, popularity)
        ids = catalogue.ids
        self._check_features()
        # One eager call builds a model that was never called, so all its state exists now.
        model.score(
            store.join({"user_id": tf.constant([""]), "movie_id": tf.constant(as_bytes(ids[:1]))})
        )
        self.model_state = model_state(model)
        self.num_items = len(ids)
        self.catalogue_ids = tf.Variable(as_bytes(ids), trainable=False, name="movie_ids")
        self.catalogue_titles = tf.Variable(
            as_bytes(catalogue.titles), trainable=False, name="titles"
        )
        self.popularity = tf.Variable(
            normalized_popularity(catalogue.counts), trainable=False, name="popularity"
        )
        self.seen = catalogue.seen
        self._example_users = catalogue.example_users
        self._factorized = model.field_factorized and self._towers_split_by_side()
        if self._factorized:
            movie = model.movie_tower(store.join({"movie_id": self.catalogue_ids}))
            self.movie_embeddings = tf.Variable(movie["embeddings"], trainable=False)
            self.movie_weights = tf.Variable(movie["weights"], trainable=False)
            if supports_fast_scoring(model):  # DeepFM: item parts once (tfrec.models.fast_scoring)
                parts = side_parts(model, movie, "item")
                self.item_parts = {k: tf.Variable(v, trainable=False) for k, v in parts.items()}

    @property
    def model(self):
        """The Keras ranking model (its state is saved; the Keras object itself is not)."""
        return self._keras.model

    # ---------------------------------------------------------------- features and specs

    def _side_columns(self) -> tuple[dict, dict]:
        user = {**_columns(self.store.users), **_columns(self.store.history)}
        return user, _columns(self.store.movies)

    def _feature_keys(self) -> list[str]:
        return sorted(
            set(self.model.user_tower.feature_keys) | set(self.model.movie_tower.feature_keys)
        )

    def _check_features(self) -> None:
        user, movie = self._side_columns()
        missing = sorted(set(self._feature_keys()) - set(user) - set(movie) - set(_IDS))
        if missing:
            raise ValueError(
                f"The model reads features {missing} that the FeatureStore does not provide "
                f"(users/history: {sorted(user)}, movies: {sorted(movie)}). Fix: build the "
                "store from tables with these columns."
            )

    def _towers_split_by_side(self) -> bool:
        user, movie = self._side_columns()
        return set(self.model.user_tower.feature_keys) <= set(user) | {"user_id"} and set(
            self.model.movie_tower.feature_keys
        ) <= set(movie) | {"movie_id"}

    def feature_specs(self) -> dict:
        """Input specs of `score_features`: ids plus each tower feature, batch-dynamic."""
        user, movie = self._side_columns()
        columns = {**user, **movie}
        specs = {key: tf.TensorSpec([None], tf.string, name=key) for key in _IDS}
        for key in self._feature_keys():
            if key not in _IDS:
                column = columns[key]
                specs[key] = tf.TensorSpec([None] * column.shape.rank, column.dtype, name=key)
        return specs

    def signatures(self) -> dict:
        """Concrete functions for `tf.saved_model.save(..., signatures=...)`, by name."""
        user = tf.TensorSpec([None], tf.string, name="user_id")
        movie = tf.TensorSpec([None], tf.string, name="movie_id")
        k = tf.TensorSpec([], tf.int32, name="k")
        return {
            "serving_default": self.score_ids.get_concrete_function(user, movie),
            "score_features": self.score_features.get_concrete_function(self.feature_specs()),
            "recommend": self.recommend.get_concrete_function(user, k),
        }

    def example_inputs(self) -> dict:
        """Small valid inputs for each signature (numpy), e.g. for warmup requests."""
        users = as_bytes(np.concatenate([self._example_users, ["unknown-user"]]))
        movies = self.catalogue_ids.numpy()[: len(users)]
        movies = np.resize(movies, len(users))
        joined = self.store.join({"user_id": tf.constant(users), "movie_id": tf.constant(movies)})
        specs = self.feature_specs()
        return {
            "serving_default": {"user_id": users, "movie_id": movies},
            "score_features": {
                key: np.asarray(joined[key], dtype=spec.dtype.as_numpy_dtype)
                for key, spec in specs.items()
            },
            "recommend": {"user_id": users, "k": np.int32(min(10, self.num_items))},
        }

    # ---------------------------------------------------------------- signatures

    def _probability(self, features: dict) -> tf.Tensor:
        return tf.cast(self.model.score(features), tf.float32)

    @tf.function
    def score_ids(self, user_id, movie_id):
        """Probability of each (user_id, movie_id) pair, side features joined from the store."""
        features = self.store.join({"user_id": user_id, "movie_id": movie_id})
        return {"score": self._probability(features)}

    @tf.function
    def score_features(self, features):
        """Probability of each pair from explicit side features (users unknown to the store)."""
        return {"score": self._probability(dict(features))}

    def _catalogue_scores(self, user_id: tf.Tensor) -> tf.Tensor:
        """Model probabilities ``[B, N]`` of every catalogue movie for each user.

        Users are scored a few at a time (about `PAIRS_PER_STEP` pairs per step): memory stays
        bounded for any batch and the deep head's activations stay small enough for the CPU
        cache, which makes a batch of users as fast per user as one user.
        """
        users = self.store.join({"user_id": user_id})
        movies = None
        if not self._factorized:
            movies = self.store.join({"movie_id": tf.identity(self.catalogue_ids)})
        batch, n = tf.shape(user_id)[0], self.num_items
        step = max(1, PAIRS_PER_STEP // n)
        starts = tf.range(0, batch, step)

        def score_step(i, blocks):
            part = {key: value[starts[i] : starts[i] + step] for key, value in users.items()}
            return i + 1, blocks.write(i, self._block_scores(part, movies))

        blocks = tf.TensorArray(
            tf.float32, size=tf.size(starts), infer_shape=False, element_shape=[None, n]
        )
        _, blocks = tf.while_loop(
            lambda i, _: i < tf.size(starts), score_step, (tf.constant(0), blocks)
        )
        return tf.reshape(blocks.concat(), [batch, n])

    def _block_scores(self, users: dict, movies) -> tf.Tensor:
        """Probabilities ``[b, N]`` for a block of users' joined features."""
        batch, n = tf.shape(users["user_id"])[0], self.num_items

        def tiled(value):
            return tf.tile(value, tf.concat([[batch], tf.ones_like(tf.shape(value)[1:])], 0))

        if self._factorized:
            side = self.model.user_tower(users)
            if getattr(self, "item_parts", None) is not None:
                user = side_parts(self.model, side, "user")
                logits = cross_logits(self.model, user, self.item_parts)
                return tf.reshape(tf.sigmoid(logits), [batch, n])

            def pairs(user_part, movie_part):
                user_part = tf.repeat(user_part, n, axis=0)
                return tf.concat([user_part, tf.cast(tiled(movie_part), user_part.dtype)], axis=1)

            logits = self.model.logits_from_fields(
                pairs(side["embeddings"], self.movie_embeddings),
                pairs(side["weights"], self.movie_weights),
                training=False,
            )
        else:
            features = {key: tf.repeat(value, n, axis=0) for key, value in users.items()}
            features.update({key: tiled(value) for key, value in movies.items()})
            logits = self.model(features, training=False)
        return tf.reshape(tf.sigmoid(tf.cast(logits, tf.float32)), [batch, n])

    @tf.function
    def recommend(self, user_id, k):
        """Top-k unseen catalogue movies per user; unknown users get the cold-start strategy."""
        tf.debugging.assert_non_negative(
            k, message="`k` must be >= 0 (the number of movies to return per user)"
        )
        k = tf.minimum(k, self.num_items)
        known = self.seen.known(user_id)
        if self.cold_start == "average_user":
            scores = self._catalogue_scores(tf.where(known, user_id, ""))
        else:
            scores = tf.where(
                known[:, None], self._catalogue_scores(user_id), self.popularity[None, :]
            )
        scores = tf.where(self.seen.mask(user_id), float("-inf"), scores)
        top, index = tf.math.top_k(scores, k=k)
        found = tf.math.is_finite(top)
        return {
            "movie_ids": tf.where(found, tf.gather(self.catalogue_ids, index), ""),
            "scores": tf.where(found, top, 0.0),
            "titles": tf.where(found, tf.gather(self.catalogue_titles, index), ""),
        }

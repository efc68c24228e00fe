"""Two-tower retrieval model: user and movie vectors whose dot product ranks the whole catalogue.

A two-tower model exists for the first stage of a recommender: because the score is a dot
product of a user vector and a movie vector, every movie vector can be computed once and put
in an (approximate) nearest-neighbour index, and a user is matched against millions of movies
in milliseconds. Each tower reads the same feature columns as the ranking models (a
`tfrec.towers.Tower`), optionally runs an MLP, and L2-normalises, so logits are cosines
divided by a temperature.

Training is the TFRS Retrieval task: a softmax over the batch's movies for each positive
(user, movie) row, the other rows' movies acting as negatives. This in-batch softmax is
exactly the InfoNCE contrastive loss (van den Oord et al., 2018) with the batch as the
negative set. Three corrections are applied (Yi et al., 2019; Yang et al., 2020):

* log-Q: each candidate's logit is reduced by ``log q``, q being its probability of being
  drawn as a candidate, else popular movies are over-penalised as negatives;
* accidental hits: a batch movie equal to the row's positive is not a negative;
* mixed negatives: rows labelled 0 (uniformly sampled movies, as `RankingData.dataset`
  makes them) join the candidates as extra negatives for every positive row, which helps
  rare movies that in-batch sampling almost never shows as negatives.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.layers import MLP, L2Normalize
from tfrec.models.base import RankingModel
from tfrec.models.registry import register_model
from tfrec.retrieval.frequency import FrequencyEstimator
from tfrec.towers import build_tower, movielens_movie_columns, movielens_user_columns

LOGQ_MODES = ("none", "streaming", "feature")
REPRESENTATIONS = ("pooled", "concat")
PROBABILITY_KEY = "movie_probability"
"""Batch feature holding each row's movie sampling probability (for ``logq="feature"``)."""


@tf.keras.utils.register_keras_serializable(package="tfrec")
class TwoTower(RankingModel):
    """Two-tower retrieval model trained with corrected in-batch softmax (see module docstring).

    Args:
      user_tower: `tfrec.towers.Tower` for the user side (or its serialized config).
      movie_tower: `tfrec.towers.Tower` for the movie side.
      units: Sizes of the MLP after each tower (last = output size); () for no MLP.
      representation: "pooled" (the tower's sum of field embeddings, FM's user/movie vector)
        or "concat" (the field embeddings concatenated; needs `units` when the towers have
        different numbers of fields).
      temperature: Logits are cosine / temperature.
      logq: "streaming" (estimate probabilities with a `FrequencyEstimator`), "feature" (read
        each row's unigram probability from the batch feature ``movie_probability``) or
        "none".
      mixed_negatives: Use rows with label 0 as extra negatives for every positive row.
      remove_accidental_hits: Do not count a batch movie equal to the positive as negative.
      catalogue_size: Number of movies the label-0 rows are drawn from uniformly (their
        sampling probability is 1 / catalogue_size); needed with mixed negatives and log-Q.
      estimator_buckets: Hash buckets of the frequency estimator.
      estimator_alpha: Moving-average rate of the frequency estimator.
      l2: L2 penalty on the batch's field embeddings.

    Call arguments:
      features: Dict of feature tensors (ids and side features, see `FeatureStore`).
      training: Whether the MLPs run in training mode.

    Returns:
      Logits ``[B]`` (cosine / temperature); `user_vectors` and `movie_vectors` give the
      normalised vectors an index stores.

    Example:
      >>> model = build_model("two_tower", data.example_table(), embedding_dim=32)
      >>> model.compile(tf.keras.optimizers.Adam(1e-3))
      >>> model.fit(positives_dataset(data), epochs=5)
    """

    def __init__(
        self,
        user_tower,
        movie_tower,
        units=(64,),
        representation="pooled",
        temperature=0.05,
        logq="streaming",
        mixed_negatives=True,
        remove_accidental_hits=True,
        catalogue_size=None,
        estimator_buckets=2**17,
        estimator_alpha=0.01,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(user_tower, movie_tower, l2=l2, **kwargs)
        units = list(units or ())
        if any(isinstance(u, bool) or int(u) != u or int(u) <= 0 for u in units):
            raise ValueError(f"`units` must be positive sizes. Received: units={units!r}")
        if representation not in REPRESENTATIONS:
            raise ValueError(
                f"`representation` must be one of {REPRESENTATIONS}. "
                f"Received: representation={representation!r}"
            )
        if not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
        if logq not in LOGQ_MODES:
            raise ValueError(f"`logq` must be one of {LOGQ_MODES}. Received: logq={logq!r}")
        if catalogue_size is not None and int(catalogue_size) < 1:
            raise ValueError(
                f"`catalogue_size` must be a positive integer. Received: catalogue_size={catalogue_size!r}"
            )
        fields = (len(self.user_tower.encoders), len(self.movie_tower.encoders))
        if representation == "concat" and not units and fields[0] != fields[1]:
            raise ValueError(
                "With representation='concat' the towers give vectors of different sizes "
                f"({fields[0]} and {fields[1]} fields). Received: units=(). Fix: pass units, "
                "e.g. units=(64,)."
            )
        self.units = [int(u) for u in units]
        self.representation = representation
        self.temperature = float(temperature)
        self.logq = logq
        self.mixed_negatives = bool(mixed_negatives)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.catalogue_size = None if catalogue_size is None else int(catalogue_size)
        self.estimator_buckets = int(estimator_buckets)
        self.estimator_alpha = float(estimator_alpha)
        self.user_mlp = self._mlp("user_mlp")
        self.movie_mlp = self._mlp("movie_mlp")
        self.normalize = L2Normalize(name="l2_normalize")
        self.estimator = (
            FrequencyEstimator(self.estimator_buckets, self.estimator_alpha, name="frequency")
            if logq == "streaming"
            else None
        )
        loss = tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE
        )
        # Replaces the base class's Ranking task: a retrieval model has no labels to fit.
        self.task = tfrs.tasks.Retrieval(
            loss=loss,
            temperature=self.temperature,
            remove_accidental_hits=self.remove_accidental_hits,
            name="retrieval",
        )

    def _mlp(self, name):
        if not self.units:
            return None
        return MLP(self.units[:-1], output_units=self.units[-1], name=name)

    def _vectors(self, tower, mlp, features, training):
        out = tower(features)
        if self.representation == "pooled":
            x = out["pooled"]
        else:
            e = out["embeddings"]
            x = tf.reshape(e, [-1, e.shape[1] * e.shape[2]])
        if mlp is not None:
            x = mlp(x, training=training)
        return self.normalize(tf.cast(x, tf.float32)), out["embeddings"]

    def user_vectors(self, features, training=False):
        """Unit-norm user (query) vectors ``[B, d]``."""
        return self._vectors(self.user_tower, self.user_mlp, features, training)[0]

    def movie_vectors(self, features, training=False):
        """Unit-norm movie (candidate) vectors ``[B, d]``; what an index stores."""
        return self._vectors(self.movie_tower, self.movie_mlp, features, training)[0]

    def call(self, features, training=False):
        user = self.user_vectors(features, training)
        movie = self.movie_vectors(features, training)
        return tf.reduce_sum(user * movie, axis=1) / self.temperature

    def candidate_probability(self, features, positive, training=False):
        """Sampling probability of each candidate column (positives, then extra negatives).

        In-batch candidates are drawn with the positives' distribution p_i and extra negatives
        uniformly, so a candidate draw is item i with probability
        ``q_i = (P * p_i + U / N) / (P + U)`` for P positive and U uniform rows; the streaming
        estimator's ``1 / gap`` already estimates ``P * p_i`` (appearances per batch).
        """
        ids = features["movie_id"]
        num_pos = tf.reduce_sum(tf.cast(positive, tf.float32))
        num_neg = tf.reduce_sum(tf.cast(~positive, tf.float32)) if self.mixed_negatives else 0.0
        if self.logq == "streaming":
            per_batch = [self.estimator(tf.boolean_mask(ids, positive), training=training)]
            if self.mixed_negatives:  # read after the update above (automatic control deps)
                per_batch.append(self.estimator(tf.boolean_mask(ids, ~positive)))
        else:
            if PROBABILITY_KEY not in features:
                raise KeyError(
                    f"logq='feature' needs the batch feature '{PROBABILITY_KEY}' (each row's "
                    f"movie probability). Received keys: {sorted(features)}. Fix: add it, or "
                    "use logq='streaming'."
                )
            p = num_pos * tf.cast(features[PROBABILITY_KEY], tf.float32)
            per_batch = [tf.boolean_mask(p, positive)]
            if self.mixed_negatives:
                per_batch.append(tf.boolean_mask(p, ~positive))
        uniform = 0.0
        if self.mixed_negatives:
            if self.catalogue_size is None:
                raise ValueError(
                    "Mixed negatives with log-Q need the uniform negatives' probability. "
                    "Received: catalogue_size=None. Fix: pass catalogue_size."
                )
            uniform = num_neg / self.catalogue_size
        counts = tf.concat(per_batch, axis=0) + uniform
        return counts / tf.maximum(num_pos + num_neg, 1.0)

    def compute_loss(self, features, training=False):
        user, user_fields = self._vectors(self.user_tower, self.user_mlp, features, training)
        movie, movie_fields = self._vectors(self.movie_tower, self.movie_mlp, features, training)
        if "label" in features:
            positive = tf.cast(features["label"], tf.float32) > 0.5
        else:
            positive = tf.ones_like(features["movie_id"], dtype=tf.bool)
        queries = tf.boolean_mask(user, positive)
        candidates = tf.boolean_mask(movie, positive)
        ids = tf.boolean_mask(features["movie_id"], positive)
        if self.mixed_negatives:
            candidates = tf.concat([candidates, tf.boolean_mask(movie, ~positive)], axis=0)
            ids = tf.concat([ids, tf.boolean_mask(features["movie_id"], ~positive)], axis=0)
        probability = None
        if self.logq != "none":
            probability = self.candidate_probability(features, positive, training)
        loss = self.task(
            queries,
            candidates,
            candidate_sampling_probability=probability,
            candidate_ids=ids if self.remove_accidental_hits else None,
            compute_metrics=False,
        )
        if self.l2:
            fields = tf.concat([user_fields, movie_fields], axis=1)
            loss += self.l2 * tf.reduce_mean(tf.reduce_sum(tf.square(fields), axis=[1, 2]))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            representation=self.representation,
            temperature=self.temperature,
            logq=self.logq,
            mixed_negatives=self.mixed_negatives,
            remove_accidental_hits=self.remove_accidental_hits,
            catalogue_size=self.catalogue_size,
            estimator_buckets=self.estimator_buckets,
            estimator_alpha=self.estimator_alpha,
        )
        return config


@register_model(
    "two_tower",
    embedding_dim=32,
    units=(64,),
    representation="pooled",
    temperature=0.05,
    logq="streaming",
    mixed_negatives=True,
    remove_accidental_hits=True,
    catalogue_size=None,
    l2=0.0,
    history=True,
)
def build_two_tower(table, embedding_dim=32, history=True, **kwargs):
    """TwoTower on the default MovieLens user and movie columns adapted to `table`.

    It fits the ranking interface (``call -> logits [B]``), so `tfrec.training.fit` trains it
    on `RankingData.dataset` batches: positives feed the in-batch softmax and the sampled
    negatives become mixed negatives. ``catalogue_size`` defaults to the distinct movies of
    `table`.
    """
    user = build_tower(table, movielens_user_columns(history), embedding_dim, name="user_tower")
    movie = build_tower(table, movielens_movie_columns(), embedding_dim, name="movie_tower")
    if kwargs.get("catalogue_size") is None and "movie_id" in table:
        kwargs["catalogue_size"] = int(np.unique(table["movie_id"]).size)
    return TwoTower(user, movie, **kwargs)

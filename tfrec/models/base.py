"""The contract every tfrec ranking model follows, so the trainer, evaluator and exporter
never need to know which model they hold.

A ranking model is a `tfrs.models.Model` built on a user tower and a movie tower. It
implements `call(features) -> logits [B]`; this base owns the TFRS Ranking task (binary
cross-entropy from logits, AUC and logloss metrics) and the embedding penalty, so a concrete
model only wires blocks together in `call` (and, when it adds a second task, `compute_loss`).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.towers import Tower


def ranking_task() -> tfrs.tasks.Ranking:
    """The TFRS Ranking task all tfrec ranking models share: BCE on logits, AUC, logloss."""
    return tfrs.tasks.Ranking(
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            tf.keras.metrics.AUC(from_logits=True, name="auc"),
            tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
        ],
        name="ranking",
    )


def _tower(tower, name):
    if isinstance(tower, dict):
        tower = tf.keras.layers.deserialize(tower)
    if not isinstance(tower, Tower):
        raise TypeError(f"`{name}` must be a tfrec Tower. Received: {name}={type(tower).__name__}")
    return tower


@tf.keras.utils.register_keras_serializable(package="tfrec")
class RankingModel(tfrs.models.Model):
    """Base of tfrec's ranking models: two towers, a Ranking task, an embedding penalty.

    Subclasses implement `logits_from_fields(embeddings, weights, training)` (models built on
    the shared fields) or override `call` and `compute_loss` (models with their own embeddings).

    Args:
      user_tower: Tower for the user side (or its serialized config).
      movie_tower: Tower for the movie side (or its serialized config).
      l2: L2 penalty on the batch's looked-up field embeddings, averaged over the batch.
    """

    def __init__(self, user_tower, movie_tower, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        if float(l2) < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2!r}")
        self.user_tower = _tower(user_tower, "user_tower")
        self.movie_tower = _tower(movie_tower, "movie_tower")
        self.l2 = float(l2)
        self.task = ranking_task()

    @property
    def field_factorized(self) -> bool:
        """Whether logits come only from `logits_from_fields` on the two towers' fields.

        Such a model can score users against a catalogue by running the user tower once per
        user and the movie tower once per movie, then only its heads per pair.
        """
        cls = type(self)
        return (
            cls.call is RankingModel.call
            and cls.fields is RankingModel.fields
            and cls.encode is RankingModel.encode
            and cls.logits_from_fields is not RankingModel.logits_from_fields
        )

    def encode(self, features):
        """Runs both towers: two dicts of embeddings ``[B, F, k]``, weights, pooled vectors."""
        return self.user_tower(features), self.movie_tower(features)

    def fields(self, features):
        """All fields of both towers: embeddings ``[B, F_u + F_m, k]`` and weights."""
        user, movie = self.encode(features)
        return (
            tf.concat([user["embeddings"], movie["embeddings"]], axis=1),
            tf.concat([user["weights"], movie["weights"]], axis=1),
        )

    def score(self, features):
        """Probability that the user interacts with the movie, ``[B]``."""
        return tf.sigmoid(self(features, training=False))

    def ranking_loss(self, features, logits, embeddings=None, training=False):
        """The Ranking task on ``features["label"]`` plus the embedding penalty."""
        if "label" not in features:
            raise KeyError(
                "Training batches need a 'label' feature (1.0 for an interaction, 0.0 for a "
                f"sampled negative). Received keys: {sorted(features)}"
            )
        labels = tf.cast(features["label"], tf.float32)[:, None]
        loss = self.task(labels=labels, predictions=logits[:, None], training=training)
        if self.l2 and embeddings is not None:
            squares = tf.reduce_sum(tf.square(tf.cast(embeddings, tf.float32)), axis=[1, 2])
            loss += self.l2 * tf.reduce_mean(squares)
        return loss

    def logits_from_fields(self, embeddings, weights, training=False):
        """The model's heads on the towers' fields; subclasses implement it (or `call`)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement logits_from_fields or call"
        )

    def call(self, features, training=False):
        return self.logits_from_fields(*self.fields(features), training=training)

    def compute_loss(self, features, training=False):
        embeddings, weights = self.fields(features)
        logits = self.logits_from_fields(embeddings, weights, training=training)
        return self.ranking_loss(features, logits, embeddings, training)

    def get_config(self):
        return {
            "name": self.name,
            "user_tower": tf.keras.layers.serialize(self.user_tower),
            "movie_tower": tf.keras.layers.serialize(self.movie_tower),
            "l2": self.l2,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        # Keras would rebuild from float placeholders, which string features cannot take;
        # a ranking model builds itself on its first call instead.
        return None

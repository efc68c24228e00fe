"""Field-aware factorization machine (Juan et al. 2016) over the user and movie towers.

FFM exists because one latent vector per feature forces, say, a user id to interact with a
genre and with a release year through the same vector; FFM learns one vector per (feature,
opposite field) instead, which won several CTR competitions at the price of F times the
memory of FM.

How the field-aware vectors are stored: the towers are built with an embedding size of
``F * k`` (``F`` = number of fields of both towers, ``k`` = the field-aware latent size), so
each field encoder's own lookup (the same StringLookup vocabularies, hashing, numeric
buckets and mean pooling of multi-valued fields as every other model) returns all ``F``
vectors of a feature at once; they are reshaped to ``[B, F, F, k]`` and fed to
`tfrec.layers.FieldAwareInteraction`. `tfrec.layers.FieldAwareEmbedding` is not used because
it takes one id per field and cannot pool multi-valued fields (genres, history, title words).

Memory: ``sum(vocabulary sizes) * F * k`` weights, i.e. F times an FM with latent size k.
On ml-100k with the default 10 fields and k=4: about 6,700 ids * 40 = 270,000 weights
(+ Adam's two slots each). Time: O(F^2 k) per example (F(F-1)/2 dot products, no O(F k)
shortcut as in FM).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.inputs import example_table
from tfrec.features.towers import build_tower, movielens_movie_columns, movielens_user_columns
from tfrec.layers import FieldAwareInteraction, LinearTerm
from tfrec.models.base import Recommender
from tfrec.models.registry import register_model


@register_model("ffm", embedding_dim=4, l2=1e-5, history_length=20, task="ranking")
@tf.keras.utils.register_keras_serializable(package="tfrec")
class FFM(Recommender):
    """Field-aware factorization machine on towers whose embeddings hold F vectors per field.

    logit = w0 + sum_f w_f + sum_{i<j} <v[i, field j], v[j, field i]>

    Field order is the query tower's fields, then the candidate tower's. Each tower's
    ``embedding_dim`` must be ``F * k``: field ``i``'s ``[F * k]`` embedding is read as ``F``
    vectors of size ``k``, the ``j``-th being the one used against field ``j``. Build the
    towers with `build_ffm` (or `FFM.tower_dim`) to get this right.

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side, same ``embedding_dim``.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2: on the
        field-aware vectors looked up in each batch).

    Call arguments:
      features: Dict of feature tensors (ids and side features, see `FeatureStore`).
      training: Unused (FFM has no dropout); kept for the Keras signature.

    Returns:
      Logits ``[B]``; `score` returns probabilities.

    Example:
      >>> f = 3  # user_id, user_gender | movie_id
      >>> user = build_tower(table, [Categorical("user_id"), Categorical("user_gender")],
      ...                    FFM.tower_dim(f, 4))
      >>> movie = build_tower(table, [Categorical("movie_id")], FFM.tower_dim(f, 4))
      >>> FFM(user, movie)(features).shape
      TensorShape([B])
    """

    def __init__(self, query_tower, candidate_tower, **kwargs):
        super().__init__(query_tower, candidate_tower, **kwargs)
        self.num_fields = len(self.query_tower.fields) + len(self.candidate_tower.fields)
        dim = self.query_tower.embedding_dim
        if self.candidate_tower.embedding_dim != dim or dim % self.num_fields:
            raise ValueError(
                f"FFM needs both towers' embedding_dim equal to num_fields * k (num_fields = "
                f"{self.num_fields}). Received: query embedding_dim={dim}, candidate "
                f"embedding_dim={self.candidate_tower.embedding_dim}. Fix: build them with "
                f"FFM.tower_dim({self.num_fields}, k) or build_ffm."
            )
        self.factor_dim = dim // self.num_fields
        self.linear = LinearTerm(name="linear")
        self.interaction = FieldAwareInteraction(name="ffm")

    @staticmethod
    def tower_dim(num_fields: int, factor_dim: int) -> int:
        """Embedding size the towers need for `num_fields` fields of `factor_dim` vectors."""
        return int(num_fields) * int(factor_dim)

    def field_aware(self, embeddings):
        """``[B, F, F * k]`` tower embeddings as ``[B, F, F, k]`` field-aware vectors."""
        return tf.reshape(embeddings, [-1, self.num_fields, self.num_fields, self.factor_dim])

    def second_order(self, features):
        """The pairwise field-aware term alone, ``[B]`` (for inspection and tests)."""
        query, candidates = self.query_tower(features), self.candidate_tower(features)
        embeddings = tf.concat([query["embeddings"], candidates["embeddings"]], axis=1)
        return tf.squeeze(self.interaction(self.field_aware(embeddings)), -1)

    def score_pairs(self, query, candidates, training=False):
        """Bias + first order + field-aware pairwise interactions of both sides' fields."""
        embeddings = tf.concat([query["embeddings"], candidates["embeddings"]], axis=1)
        weights = tf.concat([query["weights"], candidates["weights"]], axis=1)
        logit = self.linear(weights) + self.interaction(self.field_aware(embeddings))
        return tf.cast(tf.squeeze(logit, -1), tf.float32)

    @classmethod
    def from_data(cls, data, embedding_dim, l2, history_length, task):
        """FFM on the default MovieLens columns; `embedding_dim` is the field-aware size k."""
        table = example_table(data, history_length)
        user_columns = _present(table, movielens_user_columns(history=history_length > 0))
        movie_columns = _present(table, movielens_movie_columns())
        dim = FFM.tower_dim(len(user_columns) + len(movie_columns), embedding_dim)
        user = build_tower(table, user_columns, dim, name="user_tower")
        movie = build_tower(table, movie_columns, dim, name="movie_tower")
        return cls(user, movie, task=task, history_length=history_length, l2=l2)


def _present(table, columns):
    return [c for c in columns if c.key in table]

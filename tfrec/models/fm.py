"""Factorization machine (Rendle 2010) over the user and movie towers' fields.

FM is the baseline every field-embedding model is measured against: a global bias, one
weight per feature and a dot product between the latent vectors of every pair of fields,
computed in O(F k). It exists here to tell how much DeepFM's, DCN's or Wide&Deep's deep
parts add on top of pure second-order interactions. With only ``user_id`` and ``movie_id``
fields it is biased matrix factorization.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.layers import FactorizationMachine, LinearTerm
from tfrec.models.base import RankingModel
from tfrec.models.registry import register_model
from tfrec.towers import build_tower, movielens_movie_columns, movielens_user_columns


@tf.keras.utils.register_keras_serializable(package="tfrec")
class FM(RankingModel):
    """Second-order factorization machine on a user tower and a movie tower.

    logit = w0 + sum_f w_f + sum_{i<j} <v_i, v_j>

    where ``w_f`` are the towers' first-order weights and ``v_f`` their field embeddings
    (multi-valued fields such as genres contribute their mean vector, as in the towers).

    Args:
      user_tower: `tfrec.towers.Tower` for the user side (or its serialized config).
      movie_tower: `tfrec.towers.Tower` for the movie side.
      l2: L2 penalty on the embeddings looked up in each batch.

    Call arguments:
      features: Dict of feature tensors (ids and side features, see `FeatureStore`).
      training: Unused (FM has no dropout); kept for the Keras signature.

    Returns:
      Logits ``[B]``; `score` returns probabilities.

    Example:
      >>> model = FM(user_tower, movie_tower, l2=1e-5)
      >>> model.compile(tf.keras.optimizers.Adam(1e-3))
      >>> model.fit(train_ds, epochs=5)
    """

    def __init__(self, user_tower, movie_tower, l2=0.0, **kwargs):
        super().__init__(user_tower, movie_tower, l2=l2, **kwargs)
        self.linear = LinearTerm(name="linear")
        self.fm = FactorizationMachine(name="fm")

    def logits_from_fields(self, embeddings, weights, training=False):
        """Bias + first order + pairwise interactions of ``[B, F, k]`` fields."""
        logit = self.linear(weights) + self.fm(embeddings)
        return tf.cast(tf.squeeze(logit, -1), tf.float32)


@register_model("fm", embedding_dim=32, l2=1e-5, history=True)
def build_fm(table, embedding_dim, history, **kwargs):
    """FM on the default MovieLens user and movie columns adapted to `table`."""
    user = build_tower(table, movielens_user_columns(history), embedding_dim, name="user_tower")
    movie = build_tower(table, movielens_movie_columns(), embedding_dim, name="movie_tower")
    return FM(user, movie, **kwargs)

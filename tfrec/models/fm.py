"""Factorization machine (Rendle 2010) over the query and candidate towers' fields.

FM is the baseline every field-embedding model is measured against: a global bias, one
weight per feature and a dot product between the latent vectors of every pair of fields,
computed in O(F k). It exists here to tell how much DeepFM's, DCN's or Wide&Deep's deep
parts add on top of pure second-order interactions. With only ``user_id`` and ``movie_id``
fields it is biased matrix factorization.

FM's logit splits exactly into a query part, a candidate part and one dot product: with
``s = s_q + s_c`` the summed field vectors of each side,
``0.5 * sum_k(s^2 - sum_f v_f^2) = fm_q + fm_c + <s_q, s_c>`` and the first-order term is a sum
per side, so a catalogue is scored with one matrix product (`FieldFactorization`).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.inputs import example_table
from tfrec.features.towers import build_tower, movielens_movie_columns, movielens_user_columns
from tfrec.layers import FactorizationMachine, LinearTerm
from tfrec.models.base import Recommender
from tfrec.models.registry import register_model


def movielens_towers(data, embedding_dim, history_length, user_columns=None, movie_columns=None):
    """The default MovieLens wiring: user (query) and movie (candidate) towers adapted to `data`."""
    table = example_table(data, history_length)
    if user_columns is None:
        user_columns = movielens_user_columns(history=history_length > 0)
    if movie_columns is None:
        movie_columns = movielens_movie_columns()
    user = build_tower(table, user_columns, embedding_dim, name="user_tower")
    movie = build_tower(table, movie_columns, embedding_dim, name="movie_tower")
    return user, movie


class FieldFactorization:
    """Per-side parts of the first-order and FM terms, for models with a `linear` and an `fm`.

    Exists so that FM and DeepFM share one exact factorisation: `fm_parts` computes a side's
    share once per query or item, `fm_cross` combines every query with every candidate by one
    matrix product, `fm_pairs` combines aligned rows.
    """

    def fm_parts(self, encoding: dict, query: bool) -> dict:
        """``linear`` ``[N]`` (with the global bias on the query side), ``fm`` ``[N]`` (the
        side's own pairwise term) and ``sum`` ``[N, k]`` (its summed field vectors)."""
        emb = tf.cast(encoding["embeddings"], tf.float32)
        total = tf.reduce_sum(emb, axis=1)
        fm = 0.5 * tf.reduce_sum(tf.square(total) - tf.reduce_sum(tf.square(emb), axis=1), axis=1)
        linear = tf.reduce_sum(tf.cast(encoding["weights"], tf.float32), axis=1)
        if query and self.linear.use_bias:
            linear += tf.cast(self.linear.bias, tf.float32)
        return {"linear": linear, "fm": fm, "sum": total}

    def fm_cross(self, query: dict, candidates: dict) -> tf.Tensor:
        base = (query["linear"] + query["fm"])[:, None] + (candidates["linear"] + candidates["fm"])
        return base + tf.matmul(query["sum"], candidates["sum"], transpose_b=True)

    def fm_pairs(self, query: dict, candidates: dict) -> tf.Tensor:
        base = query["linear"] + query["fm"] + candidates["linear"] + candidates["fm"]
        return base + tf.reduce_sum(query["sum"] * candidates["sum"], axis=1)

    def fm_grouped(self, query: dict, candidates: dict, count) -> tf.Tensor:
        """``[P, count]``: query p with candidate rows ``p * count ..`` (see `score_grouped`)."""
        base = (query["linear"] + query["fm"])[:, None] + grouped(
            candidates["linear"] + candidates["fm"], count
        )
        cross = query["sum"][:, None, :] * grouped(candidates["sum"], count)
        return base + tf.reduce_sum(cross, axis=-1)

    def with_fm_parts(self, encoding: dict, query: bool) -> dict:
        """`encoding` with its `fm_parts` (computed now when absent, e.g. in training)."""
        return encoding if "fm" in encoding else {**encoding, **self.fm_parts(encoding, query)}


def grouped(t, count):
    """``[P * count, ...]`` rows as ``[P, count, ...]``."""
    return tf.reshape(t, tf.concat([[-1, count], tf.shape(t)[1:]], axis=0))


@register_model("fm", embedding_dim=32, l2=1e-5, history_length=20, task="ranking")
@tf.keras.utils.register_keras_serializable(package="tfrec")
class FM(FieldFactorization, Recommender):
    """Second-order factorization machine on a query tower and a candidate tower.

    logit = w0 + sum_f w_f + sum_{i<j} <v_i, v_j>

    where ``w_f`` are the towers' first-order weights and ``v_f`` their field embeddings
    (multi-valued fields such as genres contribute their mean vector, as in the towers).

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict of per-pair feature tensors.
      training: Unused (FM has no dropout); kept for the Keras signature.

    Returns:
      Logits ``[B]``; `score` returns probabilities.

    Example:
      >>> model = build_model("fm", data, embedding_dim=16)
      >>> model.score_all(model.encode_query(users), model.encode_candidates(items))
    """

    def __init__(self, query_tower, candidate_tower, **kwargs):
        super().__init__(query_tower, candidate_tower, **kwargs)
        self.linear = LinearTerm(name="linear")
        self.fm = FactorizationMachine(name="fm")

    def encode_query(self, features, training=False):
        out = self.query_tower(features)
        ready = self.linear.built and not training
        return {**out, **self.fm_parts(out, query=True)} if ready else out

    def encode_candidates(self, features, training=False):
        out = self.candidate_tower(features)
        ready = self.linear.built and not training
        return {**out, **self.fm_parts(out, query=False)} if ready else out

    def score_pairs(self, query, candidates, training=False):
        """Bias + first order + pairwise interactions of all fields of both sides."""
        embeddings = tf.concat([query["embeddings"], candidates["embeddings"]], axis=1)
        weights = tf.concat([query["weights"], candidates["weights"]], axis=1)
        return tf.cast(tf.squeeze(self.linear(weights) + self.fm(embeddings), -1), tf.float32)

    def score_all(self, query, candidates, training=False):
        if "fm" not in query or "fm" not in candidates:
            return super().score_all(query, candidates, training)
        return self.fm_cross(query, candidates)

    def score_gathered(self, query, candidates, index, training=False):
        """Each distinct candidate's parts computed before they are gathered per pair."""
        if self.linear.built:
            candidates = self.with_fm_parts(candidates, False)
        return super().score_gathered(query, candidates, index, training)

    def score_grouped(self, query, candidates, count, training=False):
        """Each query's share computed once for its `count` candidates (exact)."""
        if not self.linear.built:
            return super().score_grouped(query, candidates, count, training)
        query = self.with_fm_parts(query, True)
        return self.fm_grouped(query, self.with_fm_parts(candidates, False), count)

    @classmethod
    def from_data(cls, data, embedding_dim, l2, history_length, task):
        """FM on the default MovieLens user and movie columns adapted to `data`."""
        towers = movielens_towers(data, embedding_dim, history_length)
        return cls(*towers, task=task, history_length=history_length, l2=l2)

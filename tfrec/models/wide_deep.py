"""Wide & Deep (Cheng et al. 2016): a linear model on crossed features next to an MLP.

The deep part generalises (similar users and movies get similar embeddings) but can
over-generalise for rare, specific co-occurrences; the wide part memorises them with one
weight per crossed value pair. The default crosses follow the paper's "installed app x
impression app" example: the user's recent movies x the candidate movie (item-to-item
transitions), plus user and demographic x genre affinities. Both parts are trained jointly
with the shared optimizer (the paper used FTRL+L1 for the wide part and AdaGrad for the deep
part; `wide_l2` regularises the crossed weights instead).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.inputs import example_table
from tfrec.features.towers import RECENT_MOVIES
from tfrec.layers import MLP, CrossedCategorical, LinearTerm
from tfrec.models.base import Recommender
from tfrec.models.deepfm import check_dropout, check_units
from tfrec.models.fm import movielens_towers
from tfrec.models.ncf import FirstLayerSplit, flat
from tfrec.models.registry import register_model

DEFAULT_CROSSES = (
    (RECENT_MOVIES, "movie_id", 2**20),
    ("user_id", "movie_genres", 2**17),
    ("user_gender", "movie_genres", 1024),
    ("bucketized_user_age", "movie_genres", 1024),
    ("user_occupation_text", "movie_genres", 4096),
)
"""(feature, feature, hash buckets) crossed by the `wide_deep` builder when present."""


def _check_crosses(crosses) -> list:
    checked = []
    for cross in crosses:
        ok = isinstance(cross, list | tuple) and len(cross) == 3
        if ok:
            a, b, bins = cross
            ok = isinstance(a, str) and isinstance(b, str) and isinstance(bins, int) and bins > 0
        if not ok:
            raise ValueError(
                "Each cross must be (feature_a, feature_b, num_bins), e.g. "
                f"('user_gender', 'movie_genres', 1024). Received: cross={cross!r}"
            )
        checked.append([a, b, int(bins)])
    return checked


@register_model(
    "wide_deep",
    embedding_dim=32,
    crosses=None,
    dnn_units=(256, 128),
    dropout=0.1,
    batch_norm=False,
    wide_l2=0.0,
    l2=1e-5,
    history_length=20,
    task="ranking",
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class WideDeep(FirstLayerSplit, Recommender):
    """Wide & Deep ranking model on a query tower, a candidate tower and hashed feature crosses.

    logit = w0 + sum_f w_f + sum_c cross_c(features) + MLP(flattened field embeddings)

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side.
      crosses: List of ``(feature_a, feature_b, num_bins)``: raw features (single- or
        multi-valued) whose value pairs get one hashed weight each (`CrossedCategorical`).
      dnn_units: Hidden sizes of the deep part.
      dropout: Dropout rate in the deep part.
      batch_norm: Batch normalisation in the deep part.
      wide_l2: L2 regularisation of the crossed weights (whole tables, every step).
      padding_values: Raw values (as strings) that mark padding or missing values in the
        crossed features; they form no pair.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict of feature tensors, including every crossed feature.
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]``.

    Example:
      >>> model = WideDeep(user_tower, movie_tower,
      ...                  crosses=[("user_gender", "movie_genres", 1024)], dnn_units=(64,))
      >>> model(features).shape
      TensorShape([B])
    """

    def __init__(self, query_tower, candidate_tower, crosses, dnn_units, dropout, batch_norm,
                 wide_l2, padding_values=("", "-1"), **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        if isinstance(wide_l2, bool) or float(wide_l2) < 0:
            raise ValueError(f"`wide_l2` must be >= 0. Received: wide_l2={wide_l2!r}")
        self.crosses = _check_crosses(crosses)
        self.dnn_units = check_units(dnn_units)
        self.dropout = check_dropout(dropout)
        self.batch_norm = bool(batch_norm)
        self.wide_l2 = float(wide_l2)
        self.padding_values = [str(p) for p in padding_values]
        regularizer = tf.keras.regularizers.l2(self.wide_l2) if self.wide_l2 else None
        self.linear = LinearTerm(name="wide_linear")
        self.crossed = [
            CrossedCategorical(
                bins,
                padding_values=self.padding_values,
                embeddings_regularizer=regularizer,
                name=f"cross_{a}_x_{b}",
            )
            for a, b, bins in self.crosses
        ]
        self.dnn = MLP(
            self.dnn_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            output_units=1,
            name="deep",
        )

    @property
    def raw_candidate_keys(self) -> list[str]:
        """Crossed features the candidate tower reads: joined per item, raw."""
        keys = {key for a, b, _ in self.crosses for key in (a, b)}
        return sorted(keys & set(self.candidate_tower.feature_keys))

    @property
    def raw_query_keys(self) -> list[str]:
        """Every other crossed feature: joined per query (or per training row), raw."""
        keys = {key for a, b, _ in self.crosses for key in (a, b)}
        return sorted(keys - set(self.raw_candidate_keys))

    @property
    def mlp(self):
        return self.dnn

    @staticmethod
    def mlp_input_width(tower) -> int:
        return len(tower.fields) * tower.embedding_dim

    def mlp_input(self, encoding):
        return flat(encoding["embeddings"])

    def _raw(self, features, keys):
        missing = [k for k in keys if k not in features]
        if missing:
            raise KeyError(
                f"Wide&Deep crosses read {missing} raw, but the features lack them. Received "
                f"keys: {sorted(features)}. Fix: join the side features or drop the cross."
            )
        return {k: features[k] for k in keys}

    def encode_query(self, features, training=False):
        out = super().encode_query(features, training)
        return {**out, "raw": self._raw(features, self.raw_query_keys)}

    def encode_candidates(self, features, training=False):
        out = super().encode_candidates(features, training)
        return {**out, "raw": self._raw(features, self.raw_candidate_keys)}

    def crossed_logit(self, query, candidates):
        """The crossed weights of aligned pairs, ``[P, 1]``."""
        raw = {**query["raw"], **candidates["raw"]}
        logit = 0.0
        for (a, b, _), layer in zip(self.crosses, self.crossed, strict=True):
            logit += layer([raw[a], raw[b]])
        return logit

    def score_pairs(self, query, candidates, training=False):
        """Wide part (bias, first order, crosses) plus the deep MLP, per aligned pair."""
        embeddings = tf.concat([query["embeddings"], candidates["embeddings"]], axis=1)
        weights = tf.concat([query["weights"], candidates["weights"]], axis=1)
        logit = self.linear(weights) + self.crossed_logit(query, candidates)
        logit += self.dnn(flat(embeddings), training=training)
        return tf.cast(tf.squeeze(logit, -1), tf.float32)

    def score_all(self, query, candidates, training=False):
        """Per-side first order and deep first layer, crosses per pair (exact)."""
        if training or "hidden" not in query or "hidden" not in candidates:
            return super().score_all(query, candidates, training)
        batch, count = tf.shape(query["hidden"])[0], tf.shape(candidates["hidden"])[0]
        linear_q = tf.reduce_sum(tf.cast(query["weights"], tf.float32), axis=1)
        linear_c = tf.reduce_sum(tf.cast(candidates["weights"], tf.float32), axis=1)
        logits = linear_q[:, None] + linear_c[None, :] + tf.cast(self.linear.bias, tf.float32)
        if self.crosses:
            rows = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), query["raw"])
            tiled = {
                k: tf.tile(v, tf.concat([[batch], tf.ones([tf.rank(v) - 1], tf.int32)], 0))
                for k, v in candidates["raw"].items()
            }
            crossed = self.crossed_logit({"raw": rows}, {"raw": tiled})
            logits += tf.reshape(tf.cast(crossed, tf.float32), [batch, count])
        deep = tf.cast(self.hidden_all(query, candidates), tf.float32)
        return logits + tf.reshape(deep, [batch, count])

    def get_config(self):
        config = super().get_config()
        config.update(
            crosses=self.crosses,
            dnn_units=self.dnn_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            wide_l2=self.wide_l2,
            padding_values=self.padding_values,
        )
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, crosses, dnn_units, dropout, batch_norm, wide_l2, l2,
                  history_length, task):  # fmt: skip
        """Wide&Deep on the default MovieLens columns; `crosses=None` takes the
        `DEFAULT_CROSSES` whose features are in the data (without the history cross when
        there is no history)."""
        table = example_table(data, history_length)
        if crosses is None:
            crosses = [
                c
                for c in DEFAULT_CROSSES
                if c[0] in table and c[1] in table and (history_length or RECENT_MOVIES not in c)
            ]
        towers = movielens_towers(table, embedding_dim, history_length)
        return cls(*towers, crosses=crosses, dnn_units=dnn_units, dropout=dropout,
                   batch_norm=batch_norm, wide_l2=wide_l2, task=task,
                   history_length=history_length, l2=l2)  # fmt: skip

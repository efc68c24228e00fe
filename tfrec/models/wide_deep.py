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

from tfrec.layers import MLP, CrossedCategorical, LinearTerm
from tfrec.models.base import RankingModel
from tfrec.models.registry import register_model
from tfrec.towers import (
    RECENT_MOVIES,
    build_tower,
    movielens_movie_columns,
    movielens_user_columns,
)

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


@tf.keras.utils.register_keras_serializable(package="tfrec")
class WideDeep(RankingModel):
    """Wide & Deep ranking model on a user tower, a movie tower and hashed feature crosses.

    logit = w0 + sum_f w_f + sum_c cross_c(features) + MLP(flattened field embeddings)

    Args:
      user_tower: `tfrec.towers.Tower` for the user side (or its serialized config).
      movie_tower: `tfrec.towers.Tower` for the movie side.
      crosses: List of ``(feature_a, feature_b, num_bins)``: raw features (single- or
        multi-valued) whose value pairs get one hashed weight each (`CrossedCategorical`).
      dnn_units: Hidden sizes of the deep part.
      dropout: Dropout rate in the deep part.
      batch_norm: Batch normalisation in the deep part.
      wide_l2: L2 regularisation of the crossed weights (whole tables, every step).
      padding_values: Raw values (as strings) that mark padding or missing values in the
        crossed features; they form no pair.
      l2: L2 penalty on the field embeddings looked up in each batch.

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

    def __init__(
        self,
        user_tower,
        movie_tower,
        crosses=(),
        dnn_units=(256, 128),
        dropout=0.0,
        batch_norm=False,
        wide_l2=0.0,
        padding_values=("", "-1"),
        l2=0.0,
        **kwargs,
    ):
        super().__init__(user_tower, movie_tower, l2=l2, **kwargs)
        if not dnn_units or any(int(u) <= 0 for u in dnn_units):
            raise ValueError(
                f"`dnn_units` must be positive sizes. Received: dnn_units={dnn_units!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if float(wide_l2) < 0:
            raise ValueError(f"`wide_l2` must be >= 0. Received: wide_l2={wide_l2!r}")
        self.crosses = _check_crosses(crosses)
        self.dnn_units = [int(u) for u in dnn_units]
        self.dropout = float(dropout)
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
    def raw_feature_keys(self) -> list[str]:
        """Features the crosses read raw, outside the towers (training pipelines join them)."""
        return sorted({key for a, b, _ in self.crosses for key in (a, b)})

    def wide(self, features, weights):
        """The wide part: bias + first-order weights + crossed weights, ``[B, 1]``."""
        logit = self.linear(weights)
        for (a, b, _), layer in zip(self.crosses, self.crossed, strict=True):
            missing = [k for k in (a, b) if k not in features]
            if missing:
                raise KeyError(
                    f"Wide&Deep crosses {a} x {b}, but the features lack {missing}. Received "
                    f"keys: {sorted(features)}. Fix: join the side features or drop the cross."
                )
            logit += layer([features[a], features[b]])
        return logit

    def deep(self, embeddings, training=False):
        """The deep part: MLP on the flattened field embeddings, ``[B, 1]``."""
        flat = tf.reshape(embeddings, [-1, embeddings.shape[1] * embeddings.shape[2]])
        return self.dnn(flat, training=training)

    def call(self, features, training=False):
        embeddings, weights = self.fields(features)
        logit = self.wide(features, weights) + self.deep(embeddings, training)
        return tf.cast(tf.squeeze(logit, -1), tf.float32)

    def compute_loss(self, features, training=False):
        embeddings, weights = self.fields(features)
        logit = self.wide(features, weights) + self.deep(embeddings, training)
        logits = tf.cast(tf.squeeze(logit, -1), tf.float32)
        return self.ranking_loss(features, logits, embeddings, training)

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


@register_model(
    "wide_deep",
    embedding_dim=32,
    crosses=None,
    dnn_units=(256, 128),
    dropout=0.1,
    batch_norm=False,
    wide_l2=0.0,
    l2=1e-5,
    history=True,
)
def build_wide_deep(table, embedding_dim, history, crosses, **kwargs):
    """Wide&Deep on the default MovieLens columns; `crosses=None` takes the `DEFAULT_CROSSES`
    whose features are in `table` (without the history cross when `history` is False)."""
    if crosses is None:
        crosses = [
            c
            for c in DEFAULT_CROSSES
            if c[0] in table and c[1] in table and (history or RECENT_MOVIES not in c)
        ]
    user = build_tower(table, movielens_user_columns(history), embedding_dim, name="user_tower")
    movie = build_tower(table, movielens_movie_columns(), embedding_dim, name="movie_tower")
    return WideDeep(user, movie, crosses=crosses, **kwargs)

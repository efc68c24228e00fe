"""DCN-v2 (Wang et al. 2021): explicit cross layers next to (or under) an MLP.

An MLP approximates multiplicative feature interactions poorly; DCN-v2's cross layers
``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` build every cross up to degree L+1 explicitly, with
a full or low-rank ``W_l`` (`tfrec.layers.CrossNetwork`). It exists here as the modern
"learned crosses" counterpart of Wide&Deep's hand-made ones. The towers' first-order
weights are not part of DCN, so they are frozen.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.layers import MLP, CrossNetwork
from tfrec.models.base import RankingModel
from tfrec.models.ncf import freeze_first_order
from tfrec.models.registry import register_model
from tfrec.towers import build_tower, movielens_movie_columns, movielens_user_columns

STRUCTURES = ("parallel", "stacked")


@tf.keras.utils.register_keras_serializable(package="tfrec")
class DCN(RankingModel):
    """DCN-v2 ranking model on the flattened field embeddings of two towers.

    parallel: logit = Dense(1)(concat(CrossNetwork(x0), MLP(x0)))
    stacked:  logit = Dense(1)(MLP(CrossNetwork(x0)))

    with ``x0`` the concatenation of all ``F`` field embeddings (``d = F * k``).

    Args:
      user_tower: `tfrec.towers.Tower` for the user side (or its serialized config).
      movie_tower: `tfrec.towers.Tower` for the movie side.
      cross_layers: Number of cross layers (crosses up to degree ``cross_layers + 1``).
      projection_dim: None for full-rank ``d x d`` cross kernels, or the rank ``r`` of the
        low-rank ``U V`` factorisation (``2 d r`` parameters per layer; the paper finds
        ``r = d / 4`` as accurate as full rank).
      dnn_units: Hidden sizes of the MLP; empty for the cross network alone.
      dropout: Dropout rate in the MLP.
      batch_norm: Batch normalisation in the MLP.
      structure: "parallel" (default) or "stacked".
      l2: L2 penalty on the embeddings looked up in each batch.

    Call arguments:
      features: Dict of feature tensors (ids and side features, see `FeatureStore`).
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]``.

    Example:
      >>> model = DCN(user_tower, movie_tower, cross_layers=2, projection_dim=64)
      >>> model(features).shape
      TensorShape([B])
    """

    def __init__(
        self,
        user_tower,
        movie_tower,
        cross_layers=3,
        projection_dim=None,
        dnn_units=(256, 128),
        dropout=0.0,
        batch_norm=False,
        structure="parallel",
        l2=0.0,
        **kwargs,
    ):
        super().__init__(user_tower, movie_tower, l2=l2, **kwargs)
        if structure not in STRUCTURES:
            raise ValueError(
                f"`structure` must be one of {STRUCTURES}. Received: structure={structure!r}"
            )
        if any(int(u) <= 0 for u in dnn_units):
            raise ValueError(
                f"`dnn_units` must be positive sizes. Received: dnn_units={dnn_units!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        freeze_first_order(self.user_tower)
        freeze_first_order(self.movie_tower)
        self.cross_layers = int(cross_layers)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.dnn_units = [int(u) for u in dnn_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.structure = structure
        self.cross = CrossNetwork(self.cross_layers, self.projection_dim, name="cross")
        self.dnn = (
            MLP(self.dnn_units, dropout=self.dropout, batch_norm=self.batch_norm, name="deep")
            if self.dnn_units
            else None
        )
        self.output_layer = tf.keras.layers.Dense(1, name="output")

    def logits_from_fields(self, embeddings, weights, training=False):
        """Cross network and MLP on the flattened ``[B, F, k]`` embeddings."""
        x0 = tf.reshape(embeddings, [-1, embeddings.shape[1] * embeddings.shape[2]])
        crossed = self.cross(x0)
        if self.dnn is None:
            hidden = crossed
        elif self.structure == "stacked":
            hidden = self.dnn(crossed, training=training)
        else:
            hidden = tf.concat([crossed, self.dnn(x0, training=training)], axis=1)
        return tf.cast(tf.squeeze(self.output_layer(hidden), -1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            cross_layers=self.cross_layers,
            projection_dim=self.projection_dim,
            dnn_units=self.dnn_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            structure=self.structure,
        )
        return config


@register_model(
    "dcn",
    embedding_dim=32,
    cross_layers=3,
    projection_dim=None,
    dnn_units=(256, 128),
    dropout=0.1,
    batch_norm=False,
    structure="parallel",
    l2=1e-5,
    history=True,
)
def build_dcn(table, embedding_dim, history, **kwargs):
    """DCN-v2 on the default MovieLens user and movie columns adapted to `table`."""
    user = build_tower(table, movielens_user_columns(history), embedding_dim, name="user_tower")
    movie = build_tower(table, movielens_movie_columns(), embedding_dim, name="movie_tower")
    return DCN(user, movie, **kwargs)

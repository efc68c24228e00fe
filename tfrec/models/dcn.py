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
from tfrec.models.base import Recommender, freeze_first_order
from tfrec.models.deepfm import check_dropout, check_units
from tfrec.models.fm import movielens_towers
from tfrec.models.ncf import flat
from tfrec.models.registry import register_model

STRUCTURES = ("parallel", "stacked")


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
    history_length=20,
    task="ranking",
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class DCN(Recommender):
    """DCN-v2 ranking model on the flattened field embeddings of two towers.

    parallel: logit = Dense(1)(concat(CrossNetwork(x0), MLP(x0)))
    stacked:  logit = Dense(1)(MLP(CrossNetwork(x0)))

    with ``x0`` the concatenation of all ``F`` field embeddings (``d = F * k``).

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side.
      cross_layers: Number of cross layers (crosses up to degree ``cross_layers + 1``).
      projection_dim: None for full-rank ``d x d`` cross kernels, or the rank ``r`` of the
        low-rank ``U V`` factorisation (``2 d r`` parameters per layer; the paper finds
        ``r = d / 4`` as accurate as full rank).
      dnn_units: Hidden sizes of the MLP; empty for the cross network alone.
      dropout: Dropout rate in the MLP.
      batch_norm: Batch normalisation in the MLP.
      structure: "parallel" or "stacked".
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

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

    def __init__(self, query_tower, candidate_tower, cross_layers, projection_dim, dnn_units,
                 dropout, batch_norm, structure, **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        if structure not in STRUCTURES:
            raise ValueError(
                f"`structure` must be one of {STRUCTURES}. Received: structure={structure!r}"
            )
        dnn_units = check_units(dnn_units, allow_empty=True)
        dropout = check_dropout(dropout)
        freeze_first_order(self.query_tower)
        freeze_first_order(self.candidate_tower)
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

    def score_pairs(self, query, candidates, training=False):
        """Cross network and MLP on the flattened fields of both sides."""
        x0 = flat(tf.concat([query["embeddings"], candidates["embeddings"]], axis=1))
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

    @classmethod
    def from_data(cls, data, embedding_dim, cross_layers, projection_dim, dnn_units, dropout,
                  batch_norm, structure, l2, history_length, task):  # fmt: skip
        """DCN-v2 on the default MovieLens user and movie columns adapted to `data`."""
        towers = movielens_towers(data, embedding_dim, history_length)
        return cls(*towers, cross_layers=cross_layers, projection_dim=projection_dim,
                   dnn_units=dnn_units, dropout=dropout, batch_norm=batch_norm,
                   structure=structure, task=task, history_length=history_length, l2=l2)  # fmt: skip

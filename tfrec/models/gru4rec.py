"""GRU4Rec (Hidasi et al. 2016): a recurrent network reads the sequence and predicts the next item.

The first neural session recommender: a GRU consumes the item embeddings in order and its
state after the newest item, projected to the item embedding size, scores every item by a dot
product. Trained here, like SASRec, on every position of each window with the injected loss
(full softmax by default, as in the strong GRU4Rec re-implementations of Hidasi & Czapp 2023).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.models.deepfm import check_units
from tfrec.models.registry import register_model
from tfrec.models.sequential import SEQUENCE_DEFAULTS, SEQUENCE_TRAIN, SequentialRecommender


@register_model(
    "gru4rec",
    train=SEQUENCE_TRAIN,
    embedding_dim=64,
    gru_units=(128,),
    dropout=0.2,
    **SEQUENCE_DEFAULTS,
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class GRU4Rec(SequentialRecommender):
    """Recurrent sequential recommender.

    Args:
      query_tower: Tower holding the item sequence (see `sequence_towers`).
      candidate_tower: Tower of the item fields.
      gru_units: Sizes of the stacked GRU layers.
      dropout: Dropout on the embeddings and between layers.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict with the history (``recent_movie_ids`` ``[B, L]``, newest last) and
        ``movie_id`` of each row.
      training: Whether dropout is active.

    Returns:
      Logits ``[B]`` (projected GRU state . item vector).

    Example:
      >>> model = build_model("gru4rec", data, gru_units=[128])
    """

    def __init__(self, query_tower, candidate_tower, gru_units, dropout, **kwargs):
        super().__init__(query_tower, candidate_tower, **kwargs)
        if isinstance(dropout, bool) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.gru_units = check_units(gru_units, "gru_units")
        self.dropout = float(dropout)
        self.drop = tf.keras.layers.Dropout(self.dropout)
        self.grus = [
            tf.keras.layers.GRU(units, return_sequences=True, name=f"gru_{i}")
            for i, units in enumerate(self.gru_units)
        ]
        self.project = tf.keras.layers.Dense(self.query_tower.embedding_dim, name="project")

    def backbone(self, sequence, mask, training=False):
        x = self.drop(sequence, training=training)
        for gru in self.grus:
            x = self.drop(gru(x, mask=mask, training=training), training=training)
        return self.project(x) * tf.cast(mask, x.dtype)[..., None]

    def get_config(self):
        config = super().get_config()
        config.update(gru_units=self.gru_units, dropout=self.dropout)
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, gru_units, dropout, history_length, loss,
                  loss_negatives, calibration, side_features, l2):  # fmt: skip
        """GRU4Rec on the users' item sequences of `data`."""
        shared = (history_length, loss, loss_negatives, calibration, side_features, l2)
        return cls.from_settings(data, embedding_dim, *shared, gru_units=gru_units, dropout=dropout)

"""SASRec (Kang & McAuley 2018): causal self-attention over the user's item sequence.

Each position attends to itself and every earlier position, so the newest position's state
summarises the whole history with learned, content-dependent weights, and predicts the next
item by a dot product with the (shared) item embeddings. The losses are selectable
(`tfrec.models.sequential.LOSSES`): the full softmax over the catalogue is the default (the
strongest in Klenitskiy & Vasilev 2023), ``"bce"`` with one negative is the original paper's
and ``"gbce"`` is gSASRec's calibrated version (Petrov & Macdonald 2023).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.layers import SequenceTransformer
from tfrec.models.registry import register_model
from tfrec.models.sequential import SEQUENCE_DEFAULTS, SEQUENCE_TRAIN, SequentialRecommender


@register_model(
    "sasrec",
    train=SEQUENCE_TRAIN,
    embedding_dim=64,
    num_blocks=2,
    num_heads=1,
    dropout=0.2,
    **SEQUENCE_DEFAULTS,
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class SASRec(SequentialRecommender):
    """Causal self-attentive sequential recommender.

    Args:
      query_tower: Tower holding the item sequence (see `sequence_towers`).
      candidate_tower: Tower of the item fields.
      num_blocks: Self-attention blocks.
      num_heads: Attention heads per block.
      dropout: Dropout on embeddings, attention and feed-forward outputs.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict with the history (``recent_movie_ids`` ``[B, L]``, newest last) and
        ``movie_id`` of each row.
      training: Whether dropout is active.

    Returns:
      Logits ``[B]`` (query vector . item vector).

    Example:
      >>> model = build_model("sasrec", data, history_length=50)
      >>> fit(model, data, epochs=50, batch_size=128)
    """

    def __init__(self, query_tower, candidate_tower, num_blocks, num_heads, dropout, **kwargs):
        super().__init__(query_tower, candidate_tower, **kwargs)
        self.num_blocks, self.num_heads, self.dropout = int(num_blocks), int(num_heads), dropout
        self.encoder = SequenceTransformer(
            self.history_length, self.num_blocks, self.num_heads, dropout, causal=True,
            norm_first=True, name="encoder",
        )  # fmt: skip

    def backbone(self, sequence, mask, training=False):
        return self.encoder(sequence, mask, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(num_blocks=self.num_blocks, num_heads=self.num_heads, dropout=self.dropout)
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, num_blocks, num_heads, dropout, history_length,
                  loss, loss_negatives, calibration, side_features, l2):  # fmt: skip
        """SASRec on the users' item sequences of `data` (side fields from `side_features`)."""
        shared = (history_length, loss, loss_negatives, calibration, side_features, l2)
        return cls.from_settings(data, embedding_dim, *shared, num_blocks=num_blocks,
                                 num_heads=num_heads, dropout=dropout)  # fmt: skip

"""BERT4Rec (Sun et al. 2019): bidirectional self-attention trained with a cloze objective.

Random items of a training sequence are replaced by a [MASK] token and predicted from both
their past and their future, which gives every sequence many training signals. At prediction
time a [MASK] is appended after the newest item and its state scores the catalogue. With a
full softmax over the catalogue it matches SASRec on MovieLens in the replication of Petrov &
Macdonald (2022); sampled negatives hurt it more than SASRec.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.layers import SequenceTransformer
from tfrec.models.registry import register_model
from tfrec.models.sequential import CLOZE_TRAIN, SEQUENCE_DEFAULTS, SequentialRecommender


@register_model(
    "bert4rec",
    train=CLOZE_TRAIN,
    embedding_dim=64,
    num_blocks=2,
    num_heads=2,
    dropout=0.2,
    mask_probability=0.2,
    **SEQUENCE_DEFAULTS,
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class BERT4Rec(SequentialRecommender):
    """Bidirectional sequential recommender with a cloze (masked item) objective.

    Args:
      query_tower: Tower holding the item sequence (see `sequence_towers`).
      candidate_tower: Tower of the item fields.
      num_blocks: Transformer blocks.
      num_heads: Attention heads per block.
      dropout: Dropout on embeddings, attention and feed-forward outputs.
      mask_probability: Share of a training sequence's items replaced by [MASK].
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict with the history (``recent_movie_ids`` ``[B, L]``, newest last) and
        ``movie_id`` of each row.
      training: Whether dropout is active.

    Returns:
      Logits ``[B]`` (the appended [MASK] state . item vector).

    Example:
      >>> model = build_model("bert4rec", data, mask_probability=0.2)
    """

    cloze = True

    def __init__(self, query_tower, candidate_tower, num_blocks, num_heads, dropout,
                 mask_probability, **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        if isinstance(mask_probability, bool) or not 0.0 < float(mask_probability) < 1.0:
            raise ValueError(
                f"`mask_probability` must be in (0, 1). Received: mask_probability={mask_probability!r}"
            )
        self.num_blocks, self.num_heads, self.dropout = int(num_blocks), int(num_heads), dropout
        self.mask_probability = float(mask_probability)
        self.encoder = SequenceTransformer(
            self.history_length, self.num_blocks, self.num_heads, dropout, causal=False,
            activation="gelu", norm_first=False, name="encoder",
        )  # fmt: skip
        self.mask_token = self.add_weight(
            name="mask_token",
            shape=(self.query_tower.embedding_dim,),
            initializer=tf.keras.initializers.RandomNormal(0.0, 0.05),
        )

    def mask_vector(self):
        return self.mask_token

    def backbone(self, sequence, mask, training=False):
        return self.encoder(sequence, mask, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            dropout=self.dropout,
            mask_probability=self.mask_probability,
        )
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, num_blocks, num_heads, dropout, mask_probability,
                  history_length, loss, loss_negatives, calibration, side_features, l2):  # fmt: skip
        """BERT4Rec on the users' item sequences of `data`."""
        shared = (history_length, loss, loss_negatives, calibration, side_features, l2)
        return cls.from_settings(data, embedding_dim, *shared, num_blocks=num_blocks,
                                 num_heads=num_heads, dropout=dropout,
                                 mask_probability=mask_probability)  # fmt: skip

"""NeuMF (He et al. 2017): GMF and MLP branches with separate embeddings, joined by one Dense.

NeuMF keeps its GMF and MLP embeddings side by side in one table per field (disjoint columns,
so still separate parameters, exactly the paper's separate tables) so that a single lookup,
precomputed by the training pipeline, serves both. The paper's best NeuMF starts from a
trained GMF and a trained MLP (`NeuMF.from_pretrained`).

Catalogue scoring is exact and factorised: the GMF branch is a dot product
``(h_gmf * p_u) . q_i`` and the MLP branch's first layer splits into a user and an item share.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.features.towers import Tower
from tfrec.layers import MLP, ElementwiseProduct
from tfrec.models.base import Recommender, example_features, freeze_first_order
from tfrec.models.deepfm import check_dropout, check_units
from tfrec.models.ncf import GMF, NCFMLP, FirstLayerSplit, flat, ncf_towers
from tfrec.models.registry import register_model


@register_model(
    "neumf",
    embedding_dim=32,
    mlp_embedding_dim=32,
    mlp_units=(64, 32, 16),
    dropout=0.0,
    batch_norm=False,
    l2=1e-5,
    history_length=20,
    task="ranking",
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class NeuMF(FirstLayerSplit, Recommender):
    """NeuMF: GMF and MLP branches with separate embeddings, joined by one Dense(1).

    logit = Dense(1)(concat(p_u * q_i, MLP(concat(user MLP fields, movie MLP fields))))

    Each field's embedding row holds both branches' vectors side by side: the first
    `gmf_dim` columns are the GMF embedding, the remaining ones the MLP embedding.

    Args:
      query_tower: Tower of the user fields, ``embedding_dim = gmf_dim + MLP size`` (or its
        serialized config).
      candidate_tower: Tower of the movie fields, same ``embedding_dim``.
      gmf_dim: Columns of each embedding that belong to the GMF branch.
      mlp_units: Hidden sizes of the MLP branch.
      dropout: Dropout rate in the MLP branch.
      batch_norm: Batch normalisation in the MLP branch.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2: all
        embeddings of both branches are penalised).

    Call arguments:
      features: Dict of feature tensors (at least ``user_id`` and ``movie_id``).
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]``.

    Example:
      >>> neumf = NeuMF.from_pretrained(trained_gmf, trained_mlp, alpha=0.5)
      >>> neumf.compile(tf.keras.optimizers.Adam(1e-4))
    """

    def __init__(self, query_tower, candidate_tower, gmf_dim, mlp_units, dropout, batch_norm,
                 **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        self.mlp_units = check_units(mlp_units, "mlp_units")
        self.dropout = check_dropout(dropout)
        dim = self.query_tower.embedding_dim
        if isinstance(gmf_dim, bool) or not isinstance(gmf_dim, int) or not 0 < gmf_dim < dim:
            raise ValueError(
                f"`gmf_dim` must be an int in [1, embedding_dim - 1] = [1, {dim - 1}] (the rest "
                f"of each embedding is the MLP branch's). Received: gmf_dim={gmf_dim!r}"
            )
        if self.candidate_tower.embedding_dim != dim:
            raise ValueError(
                "NeuMF needs both towers to share embedding_dim. Received: query "
                f"embedding_dim={dim}, candidate embedding_dim={self.candidate_tower.embedding_dim}"
            )
        freeze_first_order(self.query_tower)
        freeze_first_order(self.candidate_tower)
        self.gmf_dim = gmf_dim
        self.batch_norm = bool(batch_norm)
        self.product = ElementwiseProduct(name="product")
        self.mlp = MLP(self.mlp_units, dropout=self.dropout, batch_norm=self.batch_norm, name="mlp")
        self.output_layer = tf.keras.layers.Dense(1, name="output")

    def mlp_input_width(self, tower) -> int:
        return len(tower.fields) * (tower.embedding_dim - self.gmf_dim)

    def mlp_input(self, encoding):
        return flat(encoding["embeddings"][:, :, self.gmf_dim :])

    def score_pairs(self, query, candidates, training=False):
        g = self.gmf_dim
        gmf = self.product([query["pooled"][:, :g], candidates["pooled"][:, :g]])
        x = tf.concat([self.mlp_input(query), self.mlp_input(candidates)], axis=1)
        hidden = tf.concat([gmf, self.mlp(x, training=training)], axis=1)
        return tf.cast(tf.squeeze(self.output_layer(hidden), -1), tf.float32)

    def score_all(self, query, candidates, training=False):
        if training or "hidden" not in query or "hidden" not in candidates:
            return super().score_all(query, candidates, training)
        g = self.gmf_dim
        kernel = tf.cast(self.output_layer.kernel[:, 0], tf.float32)
        user = tf.cast(query["pooled"][:, :g], tf.float32) * kernel[:g]
        gmf = tf.matmul(user, tf.cast(candidates["pooled"][:, :g], tf.float32), transpose_b=True)
        deep = tf.matmul(tf.cast(self.hidden_all(query, candidates), tf.float32), kernel[g:, None])
        batch, count = tf.shape(gmf)[0], tf.shape(gmf)[1]
        bias = tf.cast(self.output_layer.bias[0], tf.float32)
        return gmf + tf.reshape(deep, [batch, count]) + bias

    @classmethod
    def from_pretrained(cls, gmf: GMF, mlp: NCFMLP, alpha: float = 0.5, l2=None, features=None):
        """NeuMF initialised from a trained GMF and a trained NCF MLP (the paper's best setup).

        Embeddings and MLP layers are copied (each field's new row is the GMF row followed by
        the MLP row); the output layer's kernel is ``[alpha * h_gmf; (1 - alpha) * h_mlp]``
        and its bias ``alpha * b_gmf + (1 - alpha) * b_mlp``, so before any further training
        the NeuMF logit equals ``alpha * GMF logit + (1 - alpha) * MLP logit``. The inputs
        are left untouched.

        Args:
          gmf: A trained (built) `GMF`.
          mlp: A trained (built) `NCFMLP` with the same fields and vocabularies.
          alpha: Weight of the GMF branch in ``[0, 1]``.
          l2: Embedding penalty of the new model; defaults to the GMF's.
          features: Optional batch used to create the new model's weights; by default a
            one-row batch is made up from the towers' encoders.
        """
        if not isinstance(gmf, GMF) or not isinstance(mlp, NCFMLP):
            raise TypeError(
                "from_pretrained needs a GMF and an NCFMLP. Received: "
                f"gmf={type(gmf).__name__}, mlp={type(mlp).__name__}"
            )
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        if not gmf.output_layer.built or not mlp.output_layer.built:
            raise ValueError(
                "from_pretrained needs trained models, but the GMF or MLP has no weights yet. "
                "Fix: fit (or call) both models before combining them."
            )
        pairs = [(gmf.query_tower, mlp.query_tower), (gmf.candidate_tower, mlp.candidate_tower)]
        dim = gmf.query_tower.embedding_dim + mlp.query_tower.embedding_dim
        towers = [_widened(g, m, dim) for g, m in pairs]
        model = cls(
            *towers,
            gmf_dim=gmf.query_tower.embedding_dim,
            mlp_units=mlp.mlp_units,
            dropout=mlp.dropout,
            batch_norm=mlp.batch_norm,
            task=tf.keras.layers.serialize(gmf.task),
            history_length=gmf.history_length,
            l2=gmf.l2 if l2 is None else l2,
        )
        model(example_features(model) if features is None else features)
        for tower, (g, m) in zip(towers, pairs, strict=True):
            for new, old_g, old_m in zip(tower.fields, g.fields, m.fields, strict=True):
                rows = [old_g.embedding.embeddings.numpy(), old_m.embedding.embeddings.numpy()]
                new.embedding.set_weights([np.concatenate(rows, axis=1)])
                if hasattr(new, "weight"):
                    new.weight.set_weights(old_g.weight.get_weights())
        model.mlp.set_weights(mlp.mlp.get_weights())
        kernel_gmf, bias_gmf = gmf.output_layer.get_weights()
        kernel_mlp, bias_mlp = mlp.output_layer.get_weights()
        a = float(alpha)
        model.output_layer.set_weights(
            [
                np.concatenate([a * kernel_gmf, (1.0 - a) * kernel_mlp], axis=0),
                a * bias_gmf + (1.0 - a) * bias_mlp,
            ]
        )
        return model

    def get_config(self):
        config = super().get_config()
        config.update(
            gmf_dim=self.gmf_dim,
            mlp_units=self.mlp_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, mlp_embedding_dim, mlp_units, dropout, batch_norm,
                  l2, history_length, task):  # fmt: skip
        """NeuMF trained from scratch; `embedding_dim` is the GMF size. For the pretrained
        variant train `gmf` and `ncf_mlp` and call `NeuMF.from_pretrained`."""
        towers = ncf_towers(data, embedding_dim + mlp_embedding_dim, history_length)
        return cls(*towers, gmf_dim=embedding_dim, mlp_units=mlp_units, dropout=dropout,
                   batch_norm=batch_norm, task=task, history_length=history_length, l2=l2)  # fmt: skip


def _widened(gmf_tower: Tower, mlp_tower: Tower, dim: int) -> Tower:
    """A copy of `gmf_tower` with embedding size `dim`, after checking that `mlp_tower` embeds
    the same fields with the same vocabularies (so rows can be concatenated)."""

    def layout(tower):
        return [
            (type(e).__name__, {k: v for k, v in e.get_config().items() if k != "embedding_dim"})
            for e in tower.fields
        ]

    if layout(gmf_tower) != layout(mlp_tower):
        raise ValueError(
            "NeuMF.from_pretrained needs the GMF and the MLP to embed the same fields with the "
            f"same vocabularies. Received: GMF fields {gmf_tower.field_names}, MLP fields "
            f"{mlp_tower.field_names}. Fix: build both with the same table and `history`."
        )
    if not all(
        isinstance(getattr(e, "embedding", None), tf.keras.layers.Embedding)
        for e in gmf_tower.fields
    ):
        raise TypeError(
            "NeuMF.from_pretrained supports towers of embedding-table fields only (categorical "
            f"or bucketized). Received fields: {gmf_tower.field_names}"
        )
    encoders = [
        type(e).from_config(dict(e.get_config(), embedding_dim=dim)) for e in gmf_tower.fields
    ]
    return Tower(encoders, name=gmf_tower.name)

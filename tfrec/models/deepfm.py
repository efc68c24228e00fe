"""DeepFM (Guo et al., 2017): linear + FM + DNN heads over shared field embeddings.

DeepFM exists because FM captures every pairwise feature interaction cheaply while an MLP
captures higher-order ones, and sharing one embedding table between them means neither needs
hand-crafted crosses. Here the fields come from a user tower and a movie tower, so the very
same towers also give a retrieval model (the FM user-item cross term is a dot product of the
towers' pooled vectors), trained on the side by an optional TFRS Retrieval task.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.layers import MLP, FactorizationMachine, LinearTerm
from tfrec.models.base import RankingModel
from tfrec.models.registry import register_model
from tfrec.towers import build_tower, movielens_movie_columns, movielens_user_columns


@tf.keras.utils.register_keras_serializable(package="tfrec")
class DeepFM(RankingModel):
    """DeepFM ranking model on a user tower and a movie tower.

    logit = linear(first-order weights) + FM(all field embeddings) + DNN(flattened embeddings)

    Args:
      user_tower: `tfrec.towers.Tower` for the user side (or its serialized config).
      movie_tower: `tfrec.towers.Tower` for the movie side.
      dnn_units: Hidden layer sizes of the deep head (the paper uses 400-400-400).
      dropout: Dropout rate in the deep head.
      batch_norm: Batch normalisation in the deep head.
      l2: L2 penalty on the embeddings looked up in each batch (cheap even for huge tables).
      retrieval_weight: Weight of the in-batch softmax Retrieval task on the towers' pooled
        vectors, computed over the positive rows of a batch; 0 (default) disables it.

    Call arguments:
      features: Dict of feature tensors (ids and side features, see `FeatureStore`).
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]``; `score` returns probabilities.

    Example:
      >>> model = DeepFM(user_tower, movie_tower, dnn_units=(64, 32))
      >>> model.compile(tf.keras.optimizers.Adam(1e-3))
      >>> model.fit(train_ds, epochs=5)
    """

    def __init__(
        self,
        user_tower,
        movie_tower,
        dnn_units=(400, 400, 400),
        dropout=0.0,
        batch_norm=False,
        l2=0.0,
        retrieval_weight=0.0,
        **kwargs,
    ):
        super().__init__(user_tower, movie_tower, l2=l2, **kwargs)
        if not dnn_units or any(int(u) <= 0 for u in dnn_units):
            raise ValueError(
                f"`dnn_units` must be positive sizes. Received: dnn_units={dnn_units!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if float(retrieval_weight) < 0:
            raise ValueError(
                f"`retrieval_weight` must be >= 0. Received: retrieval_weight={retrieval_weight!r}"
            )
        self.dnn_units = [int(u) for u in dnn_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.retrieval_weight = float(retrieval_weight)
        self.linear = LinearTerm(name="linear")
        self.fm = FactorizationMachine(name="fm")
        self.dnn = MLP(
            self.dnn_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            output_units=1,
            name="dnn",
        )
        self.retrieval = (
            tfrs.tasks.Retrieval(name="retrieval") if self.retrieval_weight > 0 else None
        )

    def logits_from_fields(self, embeddings, weights, training=False):
        """The three heads on ``[B, F, k]`` field embeddings and ``[B, F]`` weights."""
        flat = tf.reshape(embeddings, [-1, embeddings.shape[1] * embeddings.shape[2]])
        logit = self.linear(weights) + self.fm(embeddings) + self.dnn(flat, training=training)
        return tf.cast(tf.squeeze(logit, -1), tf.float32)

    def compute_loss(self, features, training=False):
        user, movie = self.encode(features)
        embeddings = tf.concat([user["embeddings"], movie["embeddings"]], axis=1)
        weights = tf.concat([user["weights"], movie["weights"]], axis=1)
        logits = self.logits_from_fields(embeddings, weights, training=training)
        loss = self.ranking_loss(features, logits, embeddings, training)
        if self.retrieval is not None:
            positive = features["label"] > 0.5
            loss += self.retrieval_weight * self.retrieval(
                tf.boolean_mask(user["pooled"], positive),
                tf.boolean_mask(movie["pooled"], positive),
                compute_metrics=False,
            )
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            dnn_units=self.dnn_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            retrieval_weight=self.retrieval_weight,
        )
        return config


@register_model(
    "deepfm",
    embedding_dim=16,
    dnn_units=(400, 400, 400),
    dropout=0.0,
    batch_norm=False,
    l2=0.0,
    retrieval_weight=0.0,
    history=True,
    mixed_precision=False,
)
def build_deepfm(table, embedding_dim, history, mixed_precision=False, **kwargs):
    """DeepFM on the default MovieLens user and movie columns adapted to `table`.

    ``mixed_precision=True`` (``--set mixed_precision=true``) builds every layer under the
    "mixed_bfloat16" policy (float32 variables, bfloat16 matmuls; logits stay float32) and
    restores the previous global policy afterwards. It only pays off on CPUs with native
    bfloat16 (AVX512-BF16 / AMX); benchmarks/bench_training.py measures speed and quality.
    """
    if not isinstance(mixed_precision, bool):
        raise ValueError(
            f"`mixed_precision` must be true or false. Received: mixed_precision={mixed_precision!r}"
        )
    with _policy("mixed_bfloat16" if mixed_precision else None):
        user = build_tower(table, movielens_user_columns(history), embedding_dim, name="user_tower")
        movie = build_tower(table, movielens_movie_columns(), embedding_dim, name="movie_tower")
        return DeepFM(user, movie, **kwargs)


@contextlib.contextmanager
def _policy(name):
    """Sets the global Keras dtype policy to `name` (None: leave it) for the block, then restores it."""
    if name is None:
        yield
        return
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)

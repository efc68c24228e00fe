"""DeepFM (Guo et al. 2017): linear + FM + DNN heads over shared field embeddings.

DeepFM exists because FM captures every pairwise feature interaction cheaply while an MLP
captures higher-order ones, and sharing one embedding table between them means neither needs
hand-crafted crosses. The fields come from a query (user) tower and a candidate (movie) tower.

Catalogue scoring is exact and factorised: besides FM's per-side parts
(`tfrec.models.fm.FieldFactorization`), the DNN's first layer splits as
``W1 @ [e_q; e_c] + b1 = (W1_q @ e_q + b1) + W1_c @ e_c``, so each side's share is computed once
per user or item and only an add, the rest of the DNN and a k-dot remain per pair. With the
`make run` shape (DNN 128-64 on 10 fields of 32) that removes ~95% of the per-pair FLOPs; with
the paper's 400-400-400 on 10 fields of 16, ~20%.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from tfrec.layers import MLP, FactorizationMachine, LinearTerm
from tfrec.models.base import CANDIDATES, Recommender
from tfrec.models.fm import FieldFactorization, grouped, movielens_towers
from tfrec.models.registry import register_model
from tfrec.tasks import InBatchSoftmax


def check_units(units, name="dnn_units", allow_empty=False):
    """Positive layer sizes as a list of ints, or a ValueError naming `name`."""
    units = list(units or ())
    if (not units and not allow_empty) or any(
        isinstance(u, bool) or int(u) != u or int(u) <= 0 for u in units
    ):
        raise ValueError(f"`{name}` must be positive sizes. Received: {name}={units!r}")
    return [int(u) for u in units]


def check_dropout(dropout):
    if isinstance(dropout, bool) or not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    return float(dropout)


@register_model(
    "deepfm",
    embedding_dim=16,
    dnn_units=(400, 400, 400),
    dropout=0.0,
    batch_norm=False,
    l2=0.0,
    retrieval_weight=0.0,
    history_length=20,
    mixed_precision=False,
    task="ranking",
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class DeepFM(FieldFactorization, Recommender):
    """DeepFM on a query tower and a candidate tower.

    logit = linear(first-order weights) + FM(all field embeddings) + DNN(flattened embeddings)

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side.
      dnn_units: Hidden layer sizes of the deep head (the paper uses 400-400-400).
      dropout: Dropout rate in the deep head.
      batch_norm: Batch normalisation in the deep head.
      retrieval_weight: Weight of an auxiliary in-batch softmax on the towers' pooled vectors
        (over the positive rows of a batch); 0 disables it.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict of per-pair feature tensors.
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]``; `score` returns probabilities.

    Example:
      >>> model = build_model("deepfm", data, embedding_dim=32, dnn_units=[128, 64])
      >>> fit(model, data, epochs=10)
    """

    def __init__(self, query_tower, candidate_tower, dnn_units, dropout, batch_norm,
                 retrieval_weight, **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        if isinstance(retrieval_weight, bool) or float(retrieval_weight) < 0:
            raise ValueError(
                f"`retrieval_weight` must be >= 0. Received: retrieval_weight={retrieval_weight!r}"
            )
        self.dnn_units = check_units(dnn_units)
        self.dropout = check_dropout(dropout)
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
        self.retrieval = None
        if self.retrieval_weight > 0:
            self.retrieval = InBatchSoftmax(logq="none", mixed_negatives=False, name="retrieval")

    # ------------------------------------------------------------------ encodings

    def _parts(self, out: dict, query: bool) -> dict:
        """A side's share of every logit (FM parts plus its share of the DNN's first layer)."""
        parts = self.fm_parts(out, query)
        emb = out["embeddings"]
        width = len(self.query_tower.fields) * self.query_tower.embedding_dim
        flat = tf.reshape(emb, [-1, emb.shape[1] * emb.shape[2]])
        start, stop = (0, width) if query else (width, width + flat.shape[1])
        parts["hidden"] = self.dnn.first_layer_part(flat, start, stop, bias=query)
        return parts

    def encode_query(self, features, training=False):
        out = self.query_tower(features)
        return out if training or not self.dnn.built else {**out, **self._parts(out, True)}

    def encode_candidates(self, features, training=False):
        out = self.candidate_tower(features)
        return out if training or not self.dnn.built else {**out, **self._parts(out, False)}

    # ------------------------------------------------------------------ scoring

    def score_pairs(self, query, candidates, training=False):
        """The three heads on all fields of each aligned pair (the reference path)."""
        embeddings = tf.concat([query["embeddings"], candidates["embeddings"]], axis=1)
        weights = tf.concat([query["weights"], candidates["weights"]], axis=1)
        flat = tf.reshape(embeddings, [-1, embeddings.shape[1] * embeddings.shape[2]])
        logit = self.linear(weights) + self.fm(embeddings) + self.dnn(flat, training=training)
        return tf.cast(tf.squeeze(logit, -1), tf.float32)

    def _deep(self, hidden, training=False):
        return tf.cast(self.dnn.after_first_layer(hidden, training)[:, 0], tf.float32)

    def score_all(self, query, candidates, training=False):
        """Every query against every candidate from the per-side parts (exact)."""
        if training or "hidden" not in query or "hidden" not in candidates:
            return super().score_all(query, candidates, training)
        batch, count = tf.shape(query["hidden"])[0], tf.shape(candidates["hidden"])[0]
        hidden = query["hidden"][:, None, :] + candidates["hidden"][None, :, :]
        deep = self._deep(tf.reshape(hidden, [batch * count, -1]))
        return self.fm_cross(query, candidates) + tf.reshape(deep, [batch, count])

    def _with_parts(self, encoding, query: bool):
        return encoding if "hidden" in encoding else {**encoding, **self._parts(encoding, query)}

    def score_gathered(self, query, candidates, index, training=False):
        """Each distinct candidate's parts computed before they are gathered per pair."""
        if self.dnn.built and self.linear.built:
            candidates = self._with_parts(candidates, False)
        return super().score_gathered(query, candidates, index, training)

    def score_grouped(self, query, candidates, count, training=False):
        """Each query's share (FM parts, its slice of the DNN's first layer) computed once for
        its `count` candidates; exact, in training too (dropout and batch norm act after the
        first layer's sum, per pair)."""
        if not (self.dnn.built and self.linear.built):
            return super().score_grouped(query, candidates, count, training)
        query, candidates = self._with_parts(query, True), self._with_parts(candidates, False)
        hidden = query["hidden"][:, None, :] + grouped(candidates["hidden"], count)
        deep = self._deep(tf.reshape(hidden, [-1, hidden.shape[-1]]), training)  # batch norm: 2-D
        return self.fm_grouped(query, candidates, count) + tf.reshape(deep, [-1, count])

    # ------------------------------------------------------------------ training

    def compute_loss(self, features, training=False):
        loss = super().compute_loss(features, training)
        if self.retrieval is not None:
            if CANDIDATES in features:  # grouped: every query's slot 0 is its positive
                query = self.query_tower(features)["pooled"]
                first = {k: v[:, 0] for k, v in features[CANDIDATES].items()}
                movie = self.candidate_tower(first)["pooled"]
            else:
                positive = features["label"] > 0.5
                query = tf.boolean_mask(self.query_tower(features)["pooled"], positive)
                movie = tf.boolean_mask(self.candidate_tower(features)["pooled"], positive)
            logits = tf.matmul(query, movie, transpose_b=True)
            loss += self.retrieval_weight * self.retrieval(logits)
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

    @classmethod
    def from_data(cls, data, embedding_dim, dnn_units, dropout, batch_norm, l2, retrieval_weight,
                  history_length, mixed_precision, task):  # fmt: skip
        """DeepFM on the default MovieLens user and movie columns adapted to `data`.

        ``mixed_precision=True`` builds every layer under the "mixed_bfloat16" policy (float32
        variables, bfloat16 matmuls; logits stay float32). It only pays off on CPUs with native
        bfloat16 (AVX512-BF16 / AMX); benchmarks/bench_training.py measures it.
        """
        if not isinstance(mixed_precision, bool):
            raise ValueError(
                "`mixed_precision` must be true or false. "
                f"Received: mixed_precision={mixed_precision!r}"
            )
        with _policy("mixed_bfloat16" if mixed_precision else None):
            towers = movielens_towers(data, embedding_dim, history_length)
            return cls(
                *towers,
                dnn_units=dnn_units,
                dropout=dropout,
                batch_norm=batch_norm,
                retrieval_weight=retrieval_weight,
                task=task,
                history_length=history_length,
                l2=l2,
            )


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

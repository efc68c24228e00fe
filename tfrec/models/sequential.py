"""The contract for sequential recommenders: the query is the ordered list of what a user watched.

Why this exists: GRU4Rec, SASRec and BERT4Rec differ only in how they turn a sequence of item
embeddings into states (`backbone`); everything else is shared and lives here, on the same
`tfrec.models.Recommender` contract as every other model, so they train, evaluate, export and
serve through exactly the same paths:

* the query tower holds one `tfrec.features.SequenceEncoder` over the user's history (newest
  last, left-padded), tied to the candidate tower's ``movie_id`` table (one vector per item);
* `encode_query` runs the backbone and keeps the newest position's state as the query
  ``vector`` (BERT4Rec appends a [MASK] position and reads it instead);
* `encode_candidates` is the candidate tower's pooled item vector (the id embedding, plus side
  fields such as genres when the model is built with them);
* scores are dot products (``dot_product = True``), so the same model is a retriever too;
* training (`compute_loss`) predicts every position's next item (or, for cloze models, every
  masked item) with the injected task: full or sampled softmax over the catalogue
  (`tfrec.tasks.CatalogueSoftmax`) or BCE / gBCE against sampled negatives
  (`tfrec.tasks.SampledBCE`). Batches come from `tfrec.data.sequences.sequence_dataset`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.features.columns import Categorical, ItemSequence, MultiCategorical, Text
from tfrec.features.inputs import example_table
from tfrec.features.towers import RECENT_MOVIES, build_tower
from tfrec.models.base import Recommender, freeze_first_order, take
from tfrec.tasks import CatalogueSoftmax, SampledBCE

LOSSES = ("softmax", "sampled_softmax", "bce", "gbce")
SEQUENCE_DEFAULTS = {
    "history_length": 50,
    "loss": "softmax",
    "loss_negatives": 256,
    "calibration": 0.75,
    "side_features": (),
    "l2": 0.0,
}
"""Registry defaults every sequential model shares (each adds its own backbone settings):
50 positions, full softmax; ``loss_negatives`` is used by "sampled_softmax", "bce" (1 is the
original SASRec) and "gbce"; ``calibration`` is gSASRec's t."""
SEQUENCE_TRAIN = {"batch_size": 128, "learning_rate": 1e-3, "epochs": 200, "patience": 10}
"""Training settings of the sequential models: batches of 128 windows (each holds up to
`history_length` targets), Adam 1e-3, early stopping with patience 10 (BERT4Rec: `CLOZE_TRAIN`)."""
CLOZE_TRAIN = {**SEQUENCE_TRAIN, "batch_size": 32}
"""Training settings of cloze models (BERT4Rec): as `SEQUENCE_TRAIN` but batches of 32 windows.
Why: a window gives a cloze model only its masked items as targets (a fifth of them at mask
probability 0.2), so an epoch teaches it a fifth of what it teaches SASRec. With batches of 128
an ml-100k epoch was 19 updates, BERT4Rec's training loss sat on the popularity plateau for about
8 epochs and early stopping ended it there (test full HR@10 0.087); 4x the updates per epoch
leave it within 4 epochs (validation full HR@10 about 0.2 by epoch 25, as SASRec's)."""
SIDE_FEATURES = {
    "movie_genres": lambda: MultiCategorical("movie_genres", padding="-1"),
    "movie_title": lambda: Text("movie_title", min_count=2),
}
"""Item side fields a sequential model can add to its item vectors (`side_features`)."""


def sequence_task(loss: str, num_items: int, loss_negatives: int, calibration: float):
    """The task a ``loss`` name stands for (see `LOSSES`)."""
    if loss == "softmax":
        return CatalogueSoftmax(num_items, name="next_item")
    if loss == "sampled_softmax":
        return CatalogueSoftmax(num_items, loss_negatives, "unigram", name="next_item")
    if loss in ("bce", "gbce"):
        # "bce" is the original SASRec's loss and draws as it does (items the user never had);
        # "gbce" draws as gSASRec does (the whole catalogue). See `SampledBCE`.
        t, sasrec = (calibration, False) if loss == "gbce" else (0.0, True)
        return SampledBCE(num_items, loss_negatives, t, exclude_seen=sasrec, name="next_item")
    raise ValueError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")


def sequence_towers(data, embedding_dim: int, history_length: int, side_features=()):
    """A query tower of the tied item sequence and a candidate tower of ``movie_id`` (+ side)."""
    unknown = sorted(set(side_features) - set(SIDE_FEATURES))
    if unknown:
        raise ValueError(
            f"Unknown side features {unknown}. Received: side_features={list(side_features)}. "
            f"Fix: choose from {sorted(SIDE_FEATURES)}."
        )
    table = example_table(data, history_length)
    sequence = ItemSequence(RECENT_MOVIES, max_length=history_length)
    query = build_tower(table, [sequence], embedding_dim, name="user_tower")
    columns = [Categorical("movie_id")] + [SIDE_FEATURES[name]() for name in side_features]
    candidate = build_tower(table, columns, embedding_dim, name="movie_tower")
    return query, candidate


def catalogue_size(data) -> int:
    """Number of items of a `SplitData` (or distinct ``movie_id`` of a joined table)."""
    if isinstance(data, dict):
        return int(np.unique(data["movie_id"]).size)
    return int(data.num_items)


class SequentialRecommender(Recommender):
    """Base of the sequence models (see the module docstring); subclasses define `backbone`.

    Args:
      query_tower: Tower holding a `SequenceEncoder` of ``history_length`` positions.
      candidate_tower: Tower of the item fields (``movie_id`` first).
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).
    """

    dot_product = True
    examples = "sequences"
    cloze = False
    """Whether training masks random positions (BERT4Rec) instead of predicting the next item."""

    def __init__(self, query_tower, candidate_tower, **kwargs):
        super().__init__(query_tower, candidate_tower, **kwargs)
        sequence = self.query_tower.sequence
        if sequence is None:
            raise ValueError(
                "A sequential model's query tower needs an item sequence (ItemSequence column). "
                f"Received: fields {self.query_tower.field_names}"
            )
        if sequence.max_length != self.history_length:
            raise ValueError(
                f"The sequence keeps {sequence.max_length} positions but history_length is "
                f"{self.history_length}. Fix: build both from the same history_length."
            )
        freeze_first_order(self.candidate_tower)

    def attention_maps(self, features) -> list:
        """Per block, the attention weights ``[B, heads, L, L]`` over the users' histories in
        `features` (self-attention models only)."""
        encoder = getattr(self, "encoder", None)
        if encoder is None or not hasattr(encoder, "attention_maps"):
            raise TypeError(f"{type(self).__name__} has no self-attention to show.")
        out = self.query_tower(features)
        return encoder.attention_maps(out["sequence"], out["sequence_mask"])

    @classmethod
    def from_settings(cls, data, embedding_dim, history_length, loss, loss_negatives,
                      calibration, side_features, l2, **backbone):  # fmt: skip
        """The model on `data`'s item sequences with the shared settings (`SEQUENCE_DEFAULTS`)
        and the subclass's own `backbone` settings; what each ``from_data`` calls."""
        towers = sequence_towers(data, embedding_dim, history_length, side_features)
        task = sequence_task(loss, catalogue_size(data), loss_negatives, calibration)
        return cls(*towers, task=task, history_length=history_length, l2=l2, **backbone)

    def backbone(self, sequence, mask, training=False):
        """``[B, L, k]`` item embeddings and their ``[B, L]`` mask -> ``[B, L, k]`` states."""
        raise NotImplementedError(f"{type(self).__name__} must implement backbone")

    def mask_vector(self):
        """The learned [MASK] embedding of cloze models, ``[k]``."""
        raise NotImplementedError(f"{type(self).__name__} has no [MASK] embedding")

    def states(self, features, masked=None, training=False):
        """Backbone states ``[B, L, k]`` of the batch's sequences (`masked` positions replaced
        by the [MASK] embedding)."""
        return self._states(self.query_tower(features), masked, training)

    def _states(self, out, masked, training):
        sequence, mask = out["sequence"], out["sequence_mask"]
        if masked is not None:
            token = tf.cast(self.mask_vector(), sequence.dtype)
            sequence = tf.where(masked[..., None], token[None, None, :], sequence)
            mask = mask | masked
        return self.backbone(sequence, mask, training=training)

    def encode_query(self, features, training=False):
        if not self.cloze:
            return {"vector": tf.cast(self.states(features, training=training)[:, -1], tf.float32)}
        out = self.query_tower(features)
        batch, k = tf.shape(out["sequence"])[0], out["sequence"].shape[-1]
        token = tf.tile(
            tf.cast(self.mask_vector(), out["sequence"].dtype)[None, None, :], [batch, 1, 1]
        )
        sequence = tf.concat([out["sequence"][:, 1:], token], axis=1)
        mask = tf.concat([out["sequence_mask"][:, 1:], tf.ones([batch, 1], tf.bool)], axis=1)
        states = self.backbone(tf.reshape(sequence, [batch, -1, k]), mask, training=training)
        return {"vector": tf.cast(states[:, -1], tf.float32)}

    def encode_candidates(self, features, training=False):
        return {"vector": tf.cast(self.candidate_tower(features)["pooled"], tf.float32)}

    def score_pairs(self, query, candidates, training=False):
        return tf.reduce_sum(query["vector"] * candidates["vector"], axis=1)

    def score_all(self, query, candidates, training=False):
        return tf.matmul(query["vector"], candidates["vector"], transpose_b=True)

    def row_logits(self, queries, items, training=False, whole_catalogue=None):
        """Logits ``[R, m]`` of each query ``[R, k]`` against its own items ``[R, m]``.

        Why two routes: with m sampled negatives per target (gBCE draws 256), encoding every
        row's items means R * m candidate rows, [R, m, k] floats (1.6M rows of 64 for a batch of
        128 windows of 50). When the catalogue has at most m * k items it is cheaper to encode
        each item once, score every query against the whole catalogue with one matmul and
        gather each row's m logits from it: the same numbers and gradients, without the
        [R, m, k] tensor. `whole_catalogue` forces a route (None picks by that size rule).
        """
        num_items = self.task.num_items
        if whole_catalogue is None:
            whole_catalogue = num_items <= items.shape[-1] * queries.shape[-1]
        if whole_catalogue:
            every = self.encode_candidates(take(self._catalogue, tf.range(num_items)), training)
            logits = tf.matmul(queries, every["vector"], transpose_b=True)
            return tf.gather(logits, items, batch_dims=1)
        vectors = self.encode_candidates(take(self._catalogue, tf.reshape(items, [-1])), training)
        vectors = tf.reshape(vectors["vector"], [tf.shape(items)[0], -1, queries.shape[-1]])
        return tf.einsum("rd,rkd->rk", queries, vectors)

    def compute_loss(self, features, training=False):
        if self._catalogue is None:
            raise ValueError(
                "A sequential model scores targets against item features it keeps per item. "
                "Fix: train with tfrec.training.fit (it calls model.set_catalogue)."
            )
        masked = features.get("masked") if self.cloze else None
        out = self.query_tower(features)
        states = self._states(out, masked, training)
        penalty = self.penalty({"embeddings": out["sequence"]})  # the history items looked up
        where = tf.where(features["targets"] >= 0)
        queries = tf.cast(tf.gather_nd(states, where), tf.float32)
        targets = tf.gather_nd(features["targets"], where)
        if self.task.objective == "negatives":
            negatives = tf.gather_nd(features["negatives"], where)
            items = tf.concat([targets[:, None], negatives], axis=1)
            logits = self.row_logits(queries, items, training)
            # A uniform draw of the row's own target is no negative: the task drops its term.
            misses = tf.not_equal(negatives, targets[:, None])
            return self.task(logits[:, 0], logits[:, 1:], misses) + penalty
        items, columns, log_q = self.task.candidates(targets)
        vectors = self.encode_candidates(take(self._catalogue, items), training)["vector"]
        logits = tf.matmul(queries, vectors, transpose_b=True)
        return self.task(logits, columns, log_q, items if log_q is not None else None) + penalty

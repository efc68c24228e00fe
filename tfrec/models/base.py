"""The one contract every tfrec model follows: encode queries, encode candidates, score them.

Why this exists: a recommender is used in three ways. It trains (a loss on batches), it ranks a
catalogue for evaluation, batch jobs and serving, and it scores single (query, candidate) pairs.
The last two must not depend on which model is held, or every consumer grows special cases.
So a model says, in the spirit of TFRS and keras-rs:

* how to encode a *query* (a user, a user with context, a sequence of items): `encode_query`;
* how to encode *candidates* (items): `encode_candidates`;
* how to score aligned pairs of encodings (`score_pairs`, the reference: the whole network on
  each pair) and every query against every candidate (`score_all`, which a model overrides
  with an exact factorised form when it has one, e.g. DeepFM's user and item parts).

The evaluator, `recommend`, batch scoring and the two-stage pipeline encode the candidate side
once and each query once, then call `score_all` / `score_gathered`, with no branch on the model.
An encoding is a dict of tensors with a leading batch dimension. Training goes through the
injected task (`tfrec.tasks`): pointwise BCE, in-batch softmax or catalogue softmax, all fed by
the same contract, so ranking and retrieval models are siblings. MovieLens user/movie is only
the default wiring (towers named by the builders), never assumed here.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.features.sequence import SequenceEncoder
from tfrec.features.towers import Tower
from tfrec.tasks import get_task

CANDIDATES = "candidates"
"""Key of a grouped pointwise batch's candidate features: ``[P, G, ...]`` for P positives, each
with its G candidates (slot 0 the positive), beside the query features ``[P, ...]`` and a
``label`` ``[P, G]`` (see `tfrec.data.pointwise_dataset` with ``grouped=True``)."""


def ungroup(features: dict) -> dict:
    """A grouped pointwise batch as one row per (query, candidate) pair, as `Recommender.call`
    scores them: query features repeated for each candidate, candidates and labels flattened
    (in slot order). Any other batch is returned as it is."""
    if CANDIDATES not in features:
        return features
    count = tf.shape(features["label"])[1]
    out = {k: tf.repeat(v, count, axis=0) for k, v in features.items() if k != CANDIDATES}
    out["label"] = tf.reshape(features["label"], [-1])
    out.update({k: _flatten_group(v) for k, v in features[CANDIDATES].items()})
    return out


def _flatten_group(t):
    return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], axis=0))


def take(encoding, index):
    """Rows `index` of every tensor of an encoding (a dict of ``[N, ...]`` tensors)."""
    return tf.nest.map_structure(lambda t: tf.gather(t, index), encoding)


def encode_catalogue(model, per_item: dict, batch_size: int = 65536):
    """`model.encode_candidates` of every item of `per_item` (item-index order), in chunks."""
    count = int(tf.shape(next(iter(per_item.values())))[0])
    chunks = [
        model.encode_candidates(
            {k: v[start : start + batch_size] for k, v in per_item.items()}, training=False
        )
        for start in range(0, count, batch_size)
    ]
    return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *chunks)


def _rows(encoding) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(encoding)[0])[0]


def _tile(encoding, times):
    """Each encoding stacked `times` times (rows 0..N-1, 0..N-1, ...)."""

    def tile(t):
        return tf.tile(t, tf.concat([[times], tf.ones([tf.rank(t) - 1], tf.int32)], 0))

    return tf.nest.map_structure(tile, encoding)


def freeze_first_order(tower: Tower) -> None:
    """Makes a tower's first-order weight tables non-trainable.

    Exists for models that read only the towers' embeddings (NCF, DCN, sequential models):
    unused trainable tables would get no gradient, and Keras would warn at every step.
    """
    for encoder in tower.fields:
        weight = getattr(encoder, "weight", None)
        if isinstance(weight, tf.keras.layers.Layer):
            weight.trainable = False


def example_features(model) -> dict:
    """A one-row feature dict every encoder of `model`'s towers accepts (to build weights)."""
    features = {}
    for tower in (model.query_tower, model.candidate_tower):
        for encoder in tower.encoders:
            if getattr(encoder, "transform", "none") in ("title_tokens", "title_year"):
                features[encoder.key] = tf.constant(["example (2000)"])
            elif getattr(encoder, "multi_valued", False) or isinstance(encoder, SequenceEncoder):
                features[encoder.key] = tf.constant([[encoder.padding_value]])
            elif hasattr(encoder, "vocabulary") or hasattr(encoder, "hash_bins"):
                features[encoder.key] = tf.constant(["example"])
            else:
                features[encoder.key] = tf.constant([0.0])
    return features


def _tower(tower, name):
    if isinstance(tower, dict):
        tower = tf.keras.layers.deserialize(tower)
    if not isinstance(tower, Tower):
        raise TypeError(f"`{name}` must be a tfrec Tower. Received: {name}={type(tower).__name__}")
    return tower


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
    return value


@tf.keras.utils.register_keras_serializable(package="tfrec")
class Recommender(tfrs.models.Model):
    """Base of every tfrec model: two towers, an injected task, the scoring contract.

    Subclasses wire blocks (`tfrec.layers`) in `score_pairs`, optionally override
    `encode_query` / `encode_candidates` (to add derived parts) and `score_all` (a factorised
    catalogue scorer that must equal `score_pairs` on every pair), and register themselves with
    `tfrec.models.register_model`.

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side; a shared sequence in the query tower is
        tied to it here.
      task: A `tfrec.tasks` name ("ranking", "in_batch", "catalogue"), config or layer.
      history_length: Length of the history / sequence features the inputs must provide
        (0: none). A model setting, saved with the model.
      l2: Penalty on the embeddings looked up in each batch (mean over rows of their squared
        norm), cheap even for huge tables.

    Call arguments:
      features: Dict of per-pair feature tensors (raw, or preprocessed by the towers).
      training: Whether dropout / batch norm run in training mode.

    Returns:
      Logits ``[B]`` of each (query, candidate) row; `score` gives the task's served score.
    """

    examples = "interactions"
    """What training batches are made of: "interactions" (rows of (user, item) pairs, the
    task's objective choosing negatives) or "sequences" (windows of each user's history)."""
    candidate_id_key = "movie_id"
    """Raw candidate id in training batches (accidental hits, log-Q)."""
    candidate_index_key = "movie_index"
    """Catalogue index of the candidate in training batches (catalogue softmax targets)."""
    distinct_candidates = True
    """Whether a grouped training batch encodes each distinct candidate once (keyed by
    `candidate_index_key`) and scores its pairs through `score_gathered`. Exact when
    `encode_candidates` acts row by row, as every tfrec tower does; a subclass whose candidate
    encoding depends on the whole batch (batch norm over candidates) sets it to False."""

    def __init__(self, query_tower, candidate_tower, task="ranking", history_length=0, l2=0.0,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if isinstance(l2, bool) or float(l2) < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2!r}")
        self.query_tower = _tower(query_tower, "query_tower")
        self.candidate_tower = _tower(candidate_tower, "candidate_tower")
        self.query_tower.tie(self.candidate_tower)
        self.task = get_task(task)
        self.history_length = _non_negative_int(history_length, "history_length")
        self.l2 = float(l2)
        self._catalogue = None
        # Epoch means, reported as Keras metrics: under a tf.distribute strategy Keras then
        # reads them aggregated across replicas instead of summing per-replica values.
        self._trackers = [
            tf.keras.metrics.Mean(name=name)
            for name in ("loss", "regularization_loss", "total_loss")
        ]

    # ------------------------------------------------------------------ inputs

    @property
    def query_keys(self) -> list[str]:
        """Raw feature keys the query side reads."""
        return self.query_tower.feature_keys

    @property
    def candidate_keys(self) -> list[str]:
        """Raw feature keys the candidate side reads."""
        return self.candidate_tower.feature_keys

    def preprocess_query(self, features) -> dict:
        """The query side's string work, done once per query (see `Tower.preprocess`)."""
        return self.query_tower.preprocess(features)

    def preprocess_candidates(self, features) -> dict:
        """The candidate side's string work, done once per item."""
        return self.candidate_tower.preprocess(features)

    def set_catalogue(self, features) -> None:
        """Per-item candidate features (preprocessed, catalogue-index order) that training
        objectives over the whole catalogue score against. Not saved with the model."""
        self._catalogue = features

    # ------------------------------------------------------------------ the contract

    def encode_query(self, features, training=False) -> dict:
        """The query encoding: a dict of ``[B, ...]`` tensors (default: the tower's outputs)."""
        return self.query_tower(features)

    def encode_candidates(self, features, training=False) -> dict:
        """The candidate encoding: a dict of ``[N, ...]`` tensors."""
        return self.candidate_tower(features)

    def score_pairs(self, query, candidates, training=False) -> tf.Tensor:
        """Logits ``[P]`` of aligned rows (``query[p]`` with ``candidates[p]``): the reference."""
        raise NotImplementedError(f"{type(self).__name__} must implement score_pairs")

    def score_all(self, query, candidates, training=False) -> tf.Tensor:
        """Logits ``[B, N]`` of every query against every candidate.

        The default runs `score_pairs` on all B * N pairs; models with a factorised form
        override it (callers keep B * N bounded by scoring a few queries at a time).
        """
        batch, count = _rows(query), _rows(candidates)
        pairs = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), query)
        logits = self.score_pairs(pairs, _tile(candidates, batch), training=training)
        return tf.reshape(logits, [batch, count])

    def score_gathered(self, query, candidates, index, training=False) -> tf.Tensor:
        """Logits ``[B, C]`` of each query against its own candidates ``candidates[index[b]]``."""
        index = tf.convert_to_tensor(index)
        items = take(candidates, tf.reshape(index, [-1]))
        return self.score_grouped(query, items, tf.shape(index)[1], training)

    def score_grouped(self, query, candidates, count, training=False) -> tf.Tensor:
        """Logits ``[B, count]`` of query b against candidate rows ``b * count ..`` (``[B *
        count]`` candidates, grouped by query): grouped training batches and sampled ranking.

        The default repeats each query's encoding `count` times and runs `score_pairs`; models
        with a factorised form override it so that a query's share is computed once."""
        pairs = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), query)
        return tf.reshape(self.score_pairs(pairs, candidates, training), [-1, count])

    def call(self, features, training=False):
        query = self.encode_query(features, training=training)
        candidates = self.encode_candidates(features, training=training)
        return tf.cast(self.score_pairs(query, candidates, training=training), tf.float32)

    def score(self, features):
        """The served score of each row (the task's activation of the logits, e.g. sigmoid)."""
        return self.task.activation(self(features, training=False))

    # ------------------------------------------------------------------ training

    def penalty(self, *encodings) -> tf.Tensor:
        """`l2` times the mean squared norm of the field embeddings in `encodings`."""
        total = tf.constant(0.0)
        if not self.l2:
            return total
        for encoding in encodings:
            if "embeddings" in encoding:
                squares = tf.square(tf.cast(encoding["embeddings"], tf.float32))
                total += tf.reduce_mean(tf.reduce_sum(squares, axis=[1, 2]))
        # Summed over replicas by a strategy's gradient all-reduce: one share each.
        return self.l2 * total / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_loss(self, features, training=False):
        objective = self.task.objective
        if objective == "pointwise" and CANDIDATES in features:
            return self._grouped_loss(features, training)
        query = self.encode_query(features, training=training)
        candidates = self.encode_candidates(features, training=training)
        penalty = self.penalty(query, candidates)
        if objective == "pointwise":
            if "label" not in features:
                raise KeyError(
                    "Training batches need a 'label' feature (1.0 for an interaction, 0.0 for a "
                    f"sampled negative). Received keys: {sorted(features)}"
                )
            logits = self.score_pairs(query, candidates, training=training)
            return self.task(features["label"], logits, training=training) + penalty
        if objective == "in_batch":
            return self._in_batch_loss(features, query, candidates, training) + penalty
        if objective == "catalogue":
            return self._catalogue_loss(features, query, training) + penalty
        raise ValueError(f"Unknown task objective. Received: objective={objective!r}")

    def _grouped_loss(self, features, training):
        """Pointwise BCE on a grouped batch: each query encoded once for its G candidates, each
        distinct candidate once for all its pairs."""
        labels = features["label"]
        count = tf.shape(labels)[1]
        query = self.encode_query(features, training=training)
        rows = {k: _flatten_group(v) for k, v in features[CANDIDATES].items()}
        if self.distinct_candidates and self.candidate_index_key in rows:
            # A batch's candidates repeat (popular positives, negatives drawn from one
            # catalogue): each distinct one is encoded once and its pairs gather it.
            unique, index = tf.unique(rows[self.candidate_index_key])
            first = tf.math.unsorted_segment_min(tf.range(tf.size(index)), index, tf.size(unique))
            candidates = self.encode_candidates(take(rows, first), training=training)
            logits = self.score_gathered(
                query, candidates, tf.reshape(index, [-1, count]), training
            )
            per_pair = {}  # the penalty is a mean over pairs, not over distinct candidates
            if self.l2 and "embeddings" in candidates:
                per_pair["embeddings"] = tf.gather(candidates["embeddings"], index)
        else:
            per_pair = candidates = self.encode_candidates(rows, training=training)
            logits = self.score_grouped(query, candidates, count, training=training)
        return self.task(labels, logits, training=training) + self.penalty(query, per_pair)

    def _in_batch_loss(self, features, query, candidates, training):
        ids = features[self.candidate_id_key]
        if "label" in features:
            positive = tf.cast(features["label"], tf.float32) > 0.5
        else:
            positive = tf.ones(tf.shape(ids), tf.bool)
        rows = tf.where(positive)[:, 0]
        columns = rows
        if self.task.mixed_negatives:
            columns = tf.concat([rows, tf.where(~positive)[:, 0]], axis=0)
        logits = self.score_all(take(query, rows), take(candidates, columns), training)
        probability = self.task.candidate_probability(ids, positive, features, training)
        return self.task(logits, tf.gather(ids, columns), probability)

    def _catalogue_loss(self, features, query, training):
        if self._catalogue is None:
            raise ValueError(
                "A catalogue softmax needs every item's candidate features. Fix: train with "
                "tfrec.training.fit (it calls model.set_catalogue), or call set_catalogue."
            )
        targets = features[self.candidate_index_key]
        items, columns, log_q = self.task.candidates(targets)
        encoded = self.encode_candidates(take(self._catalogue, items), training=training)
        logits = self.score_all(query, encoded, training=training)
        return self.task(logits, columns, log_q, items if log_q is not None else None)

    def _step(self, inputs, training: bool):
        loss = self.compute_loss(inputs, training=training)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        layer_losses = [tf.reduce_sum(x) for x in self.losses]  # summed over replicas: a share
        regularization = tf.add_n([tf.constant(0.0)] + layer_losses) / replicas
        return loss, regularization, loss + regularization

    def make_train_function(self, force=False):
        """Keras' train function, with the optimizer's slot variables created before it traces.

        Why: `tf.function` traces a function twice when its first trace creates variables (once
        to create them, once more without), and Keras optimizers create their slots inside the
        first `apply_gradients`. Creating them here, from the built model's trainable variables,
        halves the tracing every `fit` pays (about 2 s with one step per call and 4 s with 8, at
        `make run`'s model on 2 cores). A model not yet built (its variables appear in the first
        step) keeps Keras' behaviour.
        """
        optimizer = self.optimizer
        if (
            (self.train_function is None or force)
            and self.built
            and isinstance(optimizer, tf.keras.optimizers.Optimizer)
        ):
            optimizer.build(self.trainable_variables)  # a no-op once built
        return super().make_train_function(force)

    def train_step(self, inputs):
        """TFRS' step (loss from `compute_loss` plus layer losses), reporting metrics only, so
        that epoch logs are the metrics' values aggregated over every replica."""
        with tf.GradientTape() as tape:
            values = self._step(inputs, training=True)
        gradients = tape.gradient(values[2], self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._report(values)

    def test_step(self, inputs):
        return self._report(self._step(inputs, training=False))

    def _report(self, values) -> dict:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for tracker, value in zip(self._trackers, values, strict=True):
            # A replica's loss is its share of the global mean (see tfrec.tasks.reduction).
            tracker.update_state(value * replicas)
        return {metric.name: metric.result() for metric in self.metrics}

    # ------------------------------------------------------------------ serialization

    def get_config(self):
        return {
            "name": self.name,
            "query_tower": tf.keras.layers.serialize(self.query_tower),
            "candidate_tower": tf.keras.layers.serialize(self.candidate_tower),
            "task": tf.keras.layers.serialize(self.task),
            "history_length": self.history_length,
            "l2": self.l2,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        # Keras would rebuild from float placeholders, which string features cannot take;
        # a tfrec model builds itself on its first call instead.
        return None

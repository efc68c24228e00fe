"""Any model's score function, through the model contract: candidates encoded once, queries once.

Why this exists: every protocol sees a model as ``score_fn(user_index [B], item_index [B, C])``.
`CatalogueScorer` builds that function for any `tfrec.models.Recommender` without knowing which
model it holds: it encodes the whole catalogue once (`encode_candidates`), each batch of users
once (`encode_query`, with features and histories as of the split), and scores them with
`score_all` (every item, or one shared list) or `score_gathered` (each user's own candidates).
A model with a factorised `score_all` (DeepFM, FM, NCF, two-tower) is therefore fast everywhere.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data.splitdata import SplitData
from tfrec.evaluation.protocols import evaluate
from tfrec.features.inputs import ModelInputs
from tfrec.models.base import encode_catalogue


def _take(encoding, index):
    return tf.nest.map_structure(lambda t: tf.gather(t, index), encoding)


class CatalogueScorer:
    """A `tfrec.evaluation` score function for any model (see the module docstring).

    Args:
      model: A built `tfrec.models.Recommender`.
      inputs: The model's `ModelInputs` (per-user features as of the split, per-item features).
      batch_pairs: Pairs scored per step; users are scored a few at a time so that the
        ``[users, items]`` activations stay bounded (and cache-friendly).
      logits: Return logits (default; what ranking needs) instead of the task's served score.

    Example:
      >>> scorer = CatalogueScorer(model, ModelInputs.build(model, data, "test"))
      >>> scores = scorer(np.array([0, 1]), np.tile(np.arange(data.num_items), (2, 1)))
    """

    def __init__(self, model, inputs: ModelInputs, batch_pairs: int = 1 << 18, logits=True):
        self.model = model
        self.inputs = inputs
        self.batch_pairs = int(batch_pairs)
        self.candidates = None
        finish = (lambda x: x) if logits else model.task.activation

        @tf.function(reduce_retracing=True)
        def score_all(users, items, candidates):
            query = model.encode_query(inputs.users(users), training=False)
            return finish(model.score_all(query, _take(candidates, items), training=False))

        @tf.function(reduce_retracing=True)
        def score_gathered(users, index, candidates):
            query = model.encode_query(inputs.users(users), training=False)
            return finish(model.score_gathered(query, candidates, index, training=False))

        self._score_all, self._score_gathered = score_all, score_gathered
        if not model.built:  # one pair builds every head, so encodings carry their parts
            model(inputs.gather(tf.constant([0]), tf.constant([0])), training=False)
        self.refresh()

    def refresh(self) -> None:
        """Re-encodes the catalogue (after the model's weights changed, e.g. each epoch)."""
        self.candidates = encode_catalogue(self.model, self.inputs.per_item)

    def __call__(self, user_index, item_index) -> np.ndarray:
        users = np.asarray(user_index, np.int64)
        item_index = np.asarray(item_index, np.int64)
        if item_index.ndim != 2 or item_index.shape[0] != users.size:
            raise ValueError(
                "item_index must be [B, C] with one row per user. Received: "
                f"user_index.shape={users.shape}, item_index.shape={item_index.shape}"
            )
        if users.size == 0 or item_index.shape[1] == 0:
            return np.zeros(item_index.shape, np.float32)
        columns = item_index.shape[1]
        step = max(1, self.batch_pairs // columns)
        shared = bool((item_index == item_index[:1]).all())
        out = []
        for start in range(0, users.size, step):
            batch = tf.constant(users[start : start + step])
            if shared:
                items = tf.constant(item_index[0])
                out.append(self._score_all(batch, items, self.candidates))
            else:
                index = tf.constant(item_index[start : start + step])
                out.append(self._score_gathered(batch, index, self.candidates))
        return np.concatenate([o.numpy() for o in out]).astype(np.float32)


def score_fn(model, data: SplitData, as_of: str = "test", **options) -> CatalogueScorer:
    """`model`'s score function with its inputs (side features, histories) as of `as_of`."""
    return CatalogueScorer(model, ModelInputs.build(model, data, as_of), **options)


def evaluate_model(model, data: SplitData, split: str = "test", ks=(10,),
                   protocols=("sampled", "full"), **options) -> dict:  # fmt: skip
    """Leave-one-out metrics of `model` on `split` ("valid" or "test"): ``{"full_hr@10": ...}``.

    The model sees the histories known at `split` and the items known then are masked (full
    ranking) and never sampled (sampled ranking, 99 uniform negatives by default).
    """
    users, targets = data.targets(split)
    return evaluate(
        score_fn(model, data, split),
        users,
        targets,
        data.num_items,
        data.seen(split),
        ks=ks,
        protocols=protocols,
        **options,
    )

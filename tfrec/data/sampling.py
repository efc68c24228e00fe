"""Negative sampling: the one sampler training and evaluation share.

Why this exists: implicit-feedback models train on positives plus sampled "negatives", and
sampled-ranking evaluation ranks a held-out item among sampled "negatives". Either way a drawn
item the user in fact interacted with corrupts the result, so both draw from one
`NegativeSampler` built on the one per-user seen set (`tfrec.data.SeenItems`):

* `sample`: in-graph (usable inside ``tf.data``), fresh on every call so every epoch sees new
  negatives, slots drawn independently (with replacement), never a positive
  (`tfrec.data._graph_sampling`).
* `sample_distinct`: numpy, distinct negatives per row, never the target nor a seen item, and
  reproducible per user whatever the batching (`tfrec.data._distinct_sampling`).

Both follow the same distribution: uniform over the catalogue, or "popularity", proportional to
``count(i) ** alpha`` with ``count`` the item's number of users in the seen set (or the given
``item_counts``). Items of weight zero are never drawn.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data._distinct_sampling import DistinctDraws
from tfrec.data._graph_sampling import GraphDraws
from tfrec.data.seen import SeenItems

DISTRIBUTIONS = ("uniform", "popularity")


def _check_count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def _check_drawable(seen, num_items: int) -> None:
    full = np.flatnonzero(np.diff(seen.indptr) >= num_items)
    if full.size:
        raise ValueError(
            f"User {int(full[0])} has every one of the {num_items} items as a positive, so no "
            f"negative exists. Received: {full.size} such users. Fix: drop them from the "
            "positives or enlarge the catalogue."
        )


class NegativeSampler:
    """Draws items a user never interacted with, for training and for sampled evaluation.

    Args:
      seen: `SeenItems` of each user's positives (never drawn for that user).
      distribution: "uniform" or "popularity".
      alpha: Popularity exponent (>= 0): p(i) proportional to ``count(i) ** alpha``.
      item_counts: Optional ``[num_items]`` counts for "popularity" (default: each item's
        number of users in `seen`).
      seed: Seeds `sample` calls made without a seed and every `sample_distinct` draw.

    Example:
      >>> seen = SeenItems.from_pairs(users, items, num_users, num_items)
      >>> sampler = NegativeSampler(seen, seed=0)
      >>> sampler.sample(tf.constant([0, 1]), 4)          # training, in-graph
      >>> sampler.sample_distinct([0, 1], [5, 7], 99)     # evaluation, numpy
    """

    def __init__(self, seen, distribution="uniform", alpha=1.0, item_counts=None, seed=0):
        if not isinstance(seen, SeenItems):
            raise ValueError(
                "`seen` must be a tfrec.data.SeenItems (build it with SeenItems.from_pairs). "
                f"Received: seen={type(seen).__name__}"
            )
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Unknown distribution. Received: distribution={distribution!r}. "
                f"Fix: use one of {DISTRIBUTIONS}."
            )
        if isinstance(alpha, bool) or not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0. Received: alpha={alpha!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
        ):
            raise ValueError(
                f"seed must be a non-negative integer or None. Received: seed={seed!r}"
            )
        self.seen = seen
        self.num_items = seen.num_items
        self.distribution = distribution
        self.alpha = float(alpha)
        self.seed = seed
        self.weights = self._weights(item_counts)
        self._graph = None
        self._distinct = None

    def _weights(self, item_counts) -> np.ndarray | None:
        """Per-item draw weights, or None for uniform."""
        if self.distribution == "uniform":
            if item_counts is not None:
                raise ValueError(
                    "item_counts is only used with distribution='popularity'. "
                    "Received: item_counts=array"
                )
            return None
        if item_counts is None:
            counts = np.bincount(self.seen.indices, minlength=self.num_items)
        else:
            counts = np.asarray(item_counts, dtype=np.float64)
            if counts.shape != (self.num_items,):
                raise ValueError(
                    f"item_counts must have shape ({self.num_items},). Received: "
                    f"shape={counts.shape}"
                )
        counts = counts.astype(np.float64)
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(
                "item_counts must be finite and non-negative. Received: "
                f"min={counts.min()}, max={counts.max()}"
            )
        weights = np.where(counts > 0, counts, 0.0) ** self.alpha
        if self.alpha == 0:
            weights = np.ones_like(counts)
        if weights.sum() <= 0:
            raise ValueError(
                "distribution='popularity' needs at least one item with a positive count. "
                "Received: all counts zero. Fix: pass the training interactions."
            )
        return weights

    @property
    def probabilities(self) -> np.ndarray:
        """Each item's unrestricted draw probability, ``[num_items]``."""
        weights = np.ones(self.num_items) if self.weights is None else self.weights
        return weights / weights.sum()

    def sample(self, user_index, num_negatives: int, seed=None) -> tf.Tensor:
        """int64 ``[B, num_negatives]`` items, none of them a positive of its row's user.

        ``user_index`` is an int tensor ``[B]``. Without `seed` each call draws anew; with
        `seed` (shape [2] ints) the draw is stateless and reproducible, which is how it is used
        inside ``tf.data`` pipelines.
        """
        num_negatives = _check_count(num_negatives, "num_negatives", 0)
        if self._graph is None:
            _check_drawable(self.seen, self.num_items)
            with tf.init_scope():  # tables and constants live outside any tf.data graph
                self._graph = GraphDraws(self.seen, self.weights, self.seed)
        return self._graph.sample(user_index, num_negatives, seed)

    def built_here(self) -> NegativeSampler:
        """A copy whose in-graph tables (a hash table of positives, constants) are built now,
        in the graph being traced, instead of being lifted out to eager code as `sample` does.

        Exists for `tf.distribute` dataset functions (parameter-server training): the function
        is traced on the coordinator and run on every worker, so the tables must be created
        inside it to live on the worker whose pipeline reads them. Call it in the dataset
        function, before building the pipeline; draws need an explicit `seed`.
        """
        copy = NegativeSampler.__new__(NegativeSampler)
        copy.__dict__.update(self.__dict__)
        copy._distinct = None
        _check_drawable(self.seen, self.num_items)
        copy._graph = GraphDraws(self.seen, self.weights, self.seed)
        return copy

    def available(self, user_index, target_index) -> np.ndarray:
        """How many items each (user, target) row can draw distinct negatives from."""
        return self._distinct_draws().available(user_index, target_index)

    def sample_distinct(self, user_index, target_index, num_negatives: int) -> np.ndarray:
        """int64 ``[B, num_negatives]`` distinct negatives per row, none seen nor the target.

        Depends only on (seed, user, target, seen set); raises ValueError naming the user if
        some user has fewer than `num_negatives` items available.
        """
        user_index = np.asarray(user_index, dtype=np.int64)
        target_index = np.asarray(target_index, dtype=np.int64)
        if user_index.ndim != 1 or user_index.shape != target_index.shape:
            raise ValueError(
                "user_index and target_index must be 1-D arrays of the same length. "
                f"Received: shapes {user_index.shape} and {target_index.shape}"
            )
        num_negatives = _check_count(num_negatives, "num_negatives", 1)
        self.seen.check_users(user_index)
        if target_index.size and (target_index.min() < 0 or target_index.max() >= self.num_items):
            raise ValueError(
                f"target_index must lie in [0, num_items={self.num_items}). "
                f"Received: min={target_index.min()}, max={target_index.max()}"
            )
        return self._distinct_draws().sample(user_index, target_index, num_negatives)

    def _distinct_draws(self) -> DistinctDraws:
        if self._distinct is None:
            weights = np.ones(self.num_items) if self.weights is None else self.weights
            seed = 0 if self.seed is None else self.seed
            self._distinct = DistinctDraws(self.seen, weights, self.weights is None, seed)
        return self._distinct

"""In-graph negative draws for training (the TensorFlow half of `NegativeSampler`).

Candidates are drawn from the unrestricted distribution and checked against a hash table of
(user, item) positives (one hash probe each: ~40x cheaper than a binary search over millions of
keys); after a few rounds the draws still rejected (users owning much of the catalogue or of its
popularity mass) are drawn exactly from the restricted distribution:

* uniform: the r-th non-positive item of the user, r uniform. With the user's sorted positives
  p_0 < p_1 < ..., ``p_j - j`` counts non-positives before p_j, so the answer is
  ``r + #{j : p_j - j <= r}``: one ``searchsorted`` over a global key ``user * N + (p_j - j)``.
* popularity: p(i) proportional to a weight w(i). With integer weights and exact cumulative
  sums, a value v uniform in the user's free mass is shifted by the mass of the positives it
  passes (found by a per-user binary search) and inverted through the global cumulative sums.

Accepted candidates and fallback draws follow the same restricted distribution, so the result
is exact. The hash table costs roughly 30-40 bytes per distinct positive.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

ROUNDS = 3  # rejection rounds before the exact fallback
_WEIGHT_SCALE = 2.0**52  # integer popularity weights sum to about this (exact in int64 and f64)


class GraphDraws:
    """Exact in-graph draws of non-positive items; see the module docstring.

    Args:
      seen: `SeenItems` of the positives (sorted, distinct per user).
      weights: Per-item float weights for popularity draws, or None for uniform.
      seed: Seeds draws made without an explicit seed (None: nondeterministic).
    """

    def __init__(self, seen, weights, seed):
        self.num_items = int(seen.num_items)
        self.num_users = int(seen.num_users)
        indptr, items = seen.indptr, seen.indices
        counts = np.diff(indptr)
        pos_user = np.repeat(np.arange(self.num_users, dtype=np.int64), counts)
        keys = pos_user * self.num_items + items
        rank = np.arange(keys.size) - indptr[pos_user]
        sentinel = np.int64(max(self.num_users, 1)) * self.num_items
        # key -> 1 for each positive; the key -1 (never queried) keeps the table non-empty.
        self._positives = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(np.append(keys, -1), tf.int64),
                tf.constant(np.append(np.ones(keys.size, np.int64), 0)),
            ),
            default_value=tf.constant(0, tf.int64),
        )
        self._offsets = tf.constant(indptr)
        self._free = tf.constant(self.num_items - counts)  # non-positive items per user
        self._skip_keys = tf.constant(np.append(keys - rank, sentinel))
        self._seed = seed
        self._generator = None  # made on the first unseeded draw (a variable: not in tf.data)
        self.popularity = weights is not None
        if self.popularity:
            self._init_popularity(weights, pos_user, items, indptr, counts)

    def sample(self, user_index, num_negatives: int, seed=None) -> tf.Tensor:
        users = tf.cast(tf.reshape(user_index, [-1]), tf.int64)
        batch = tf.shape(users, out_type=tf.int64)[0]
        flat_users = tf.repeat(users, num_negatives)
        if seed is None:
            if self._generator is None:
                with tf.init_scope():
                    self._generator = (
                        tf.random.Generator.from_seed(self._seed)
                        if self._seed is not None
                        else tf.random.Generator.from_non_deterministic_state()
                    )
            seed = self._generator.make_seeds(1)[:, 0]
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), ROUNDS + 2)
        if self.popularity:
            draw, exact = self._popularity_candidates, self._exact_popularity
        else:
            draw, exact = self._uniform_candidates, self._exact_uniform
        items = draw(flat_users, seeds[0])
        # Later rounds and the fallback only touch the (usually few) rejected positions.
        left = tf.where(self._is_positive(flat_users, items))[:, 0]
        left_users = tf.gather(flat_users, left)
        left_items = tf.zeros_like(left_users)
        accepted = tf.zeros(tf.shape(left_users), tf.bool)
        for round_ in range(1, ROUNDS):
            candidates = draw(left_users, seeds[round_])
            fresh = tf.logical_not(accepted | self._is_positive(left_users, candidates))
            left_items = tf.where(fresh, candidates, left_items)
            accepted = accepted | fresh
        still = tf.where(tf.logical_not(accepted))[:, 0]
        fallback = exact(tf.gather(left_users, still), seeds[ROUNDS])
        left_items = tf.tensor_scatter_nd_update(left_items, still[:, None], fallback)
        items = tf.tensor_scatter_nd_update(items, left[:, None], left_items)
        return tf.reshape(items, tf.stack([batch, num_negatives]))

    def _init_popularity(self, weights, pos_user, pos_item, offsets, counts) -> None:
        scaled = np.floor(weights * (_WEIGHT_SCALE / weights.sum())).astype(np.int64)
        scaled[(weights > 0) & (scaled == 0)] = 1
        cdf = np.cumsum(scaled)
        pos_weight = scaled[pos_item]
        prefix = np.concatenate([[0], np.cumsum(pos_weight)])  # positives' mass before j
        free_mass = cdf[-1] - (prefix[offsets[1:]] - prefix[offsets[:-1]])
        stuck = np.flatnonzero(free_mass <= 0)
        if stuck.size:
            raise ValueError(
                f"User {int(stuck[0])} has every item of non-zero popularity as a positive, so "
                "no popularity negative exists. Fix: use distribution='uniform', alpha=0, or "
                "drop such users."
            )
        # Non-positive mass before each positive: exclusive cdf minus earlier positives' mass.
        before = cdf[pos_item] - pos_weight - (prefix[:-1] - prefix[offsets[pos_user]])
        self._cdf = tf.constant(cdf)
        self._total = int(cdf[-1])
        self._prefix = tf.constant(prefix)
        self._free_mass = tf.constant(free_mass)
        self._before = tf.constant(np.append(before, np.iinfo(np.int64).max))
        self._search_steps = int(math.ceil(math.log2(int(counts.max(initial=0)) + 1))) + 1

    def _uniforms(self, like: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_uniform(tf.shape(like), seed, dtype=tf.float64)

    def _below(self, bound: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Integers uniform in [0, bound) (bound an int64 tensor, exact up to 2**52)."""
        scaled = tf.floor(self._uniforms(bound, seed) * tf.cast(bound, tf.float64))
        return tf.minimum(tf.cast(scaled, tf.int64), bound - 1)

    def _uniform_candidates(self, users: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(users)
        return tf.random.stateless_uniform(shape, seed, 0, self.num_items, dtype=tf.int64)

    def _popularity_candidates(self, users: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        mass = tf.random.stateless_uniform(tf.shape(users), seed, 0, self._total, dtype=tf.int64)
        return tf.searchsorted(self._cdf, mass, side="right", out_type=tf.int64)

    def _exact_uniform(self, users: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Draws uniformly among each user's non-positives via the rank trick."""
        rank = self._below(tf.gather(self._free, users), seed)
        query = users * self.num_items + rank
        skipped = tf.searchsorted(self._skip_keys, query, side="right", out_type=tf.int64)
        return rank + skipped - tf.gather(self._offsets, users)

    def _is_positive(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        return self._positives.lookup(users * self.num_items + items) > 0

    def _exact_popularity(self, users: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Draws from p restricted to each user's non-positives by inverting its mass."""
        value = self._below(tf.gather(self._free_mass, users), seed)
        low = tf.gather(self._offsets, users)
        start = low
        high = tf.gather(self._offsets, users + 1)
        for _ in range(self._search_steps):  # upper bound of value in before[low:high]
            active = low < high
            middle = (low + high) // 2
            go_right = active & (tf.gather(self._before, middle) <= value)
            low = tf.where(go_right, middle + 1, low)
            high = tf.where(active & tf.logical_not(go_right), middle, high)
        shifted = value + tf.gather(self._prefix, low) - tf.gather(self._prefix, start)
        return tf.searchsorted(self._cdf, shifted, side="right", out_type=tf.int64)

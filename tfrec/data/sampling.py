"""Exact negative sampling in TensorFlow ops, and the training pipeline built on it.

Why this exists: implicit-feedback models train on positives plus sampled "negatives", and a
sampled negative that is in fact one of the user's positives teaches the model the wrong thing.
:class:`NegativeSampler` never returns a user's positive, draws fresh negatives on every call
(so every epoch sees new ones), and is pure TF ops, usable inside ``tf.data`` in graph mode.

Both distributions use bounded rejection plus an exact fallback. Candidates are drawn from
the unrestricted distribution and checked against a hash table of (user, item) positives (one
hash probe each: ~40x cheaper than a binary search over millions of keys, which is what made
earlier versions slow); after a few rounds the draws still rejected (users owning much of the
catalogue or of its popularity mass) are drawn exactly from the restricted distribution:

* ``uniform``: the r-th non-positive item of the user, r uniform. With the user's sorted
  positives p_0 < p_1 < ..., ``p_j - j`` counts non-positives before p_j, so the answer is
  ``r + #{j : p_j - j <= r}``: one ``searchsorted`` over a global key ``user * num_items +
  (p_j - j)``.
* ``popularity``: p(i) proportional to count(i)**alpha. With integer weights and exact
  cumulative sums, a value v uniform in the user's free mass is shifted by the mass of the
  positives it passes (found by a per-user binary search) and inverted through the global
  cumulative sums.

Accepted candidates and fallback draws follow the same restricted distribution, so the result
is exact. The hash table costs memory (roughly 30-40 bytes per distinct positive).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfrec.data._arrays import unique_sorted

DISTRIBUTIONS = ("uniform", "popularity")
_ROUNDS = 3  # rejection rounds before the exact fallback
_WEIGHT_SCALE = 2.0**52  # integer popularity weights sum to about this (exact in int64 and f64)


def _int_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"{name} must be a 1-D integer array. Received: {name} with shape {array.shape} "
            f"and dtype {array.dtype}. Fix: pass e.g. ratings['{name}']."
        )
    return array.astype(np.int64)


class NegativeSampler:
    """Draws negatives for users, excluding each user's positives exactly.

    Args:
        user_index: int array [N], user of each positive interaction.
        movie_index: int array [N], item of each positive (pairs may repeat).
        num_items: size of the item catalogue; items are 0..num_items-1.
        distribution: "uniform" or "popularity" (p(i) proportional to count(i)**alpha, count =
            number of users with i as a positive; items never seen get probability 0 unless
            alpha == 0).
        alpha: popularity exponent (>= 0), used by "popularity".
        seed: seeds the draws of :meth:`sample` calls made without an explicit ``seed``.
    """

    def __init__(
        self,
        user_index,
        movie_index,
        num_items: int,
        distribution: str = "uniform",
        alpha: float = 0.75,
        seed: int | None = None,
    ):
        users = _int_array(user_index, "user_index")
        items = _int_array(movie_index, "movie_index")
        if users.shape != items.shape:
            raise ValueError(
                f"user_index and movie_index must have equal lengths. Received: "
                f"{users.size} and {items.size}."
            )
        if isinstance(num_items, bool) or not isinstance(num_items, int | np.integer):
            raise ValueError(f"num_items must be an int. Received: num_items={num_items!r}.")
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1. Received: num_items={num_items}.")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Unknown distribution. Received: distribution={distribution!r}. "
                f"Fix: use one of {DISTRIBUTIONS}."
            )
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0. Received: alpha={alpha!r}.")
        if users.size and (users.min() < 0 or items.min() < 0 or items.max() >= num_items):
            raise ValueError(
                f"Indices out of range: need user_index >= 0 and 0 <= movie_index < num_items. "
                f"Received: user_index in [{users.min()}, {users.max()}], movie_index in "
                f"[{items.min()}, {items.max()}], num_items={num_items}."
            )
        self.num_items = int(num_items)
        self.distribution = distribution
        self.alpha = float(alpha)
        self.num_users = int(users.max()) + 1 if users.size else 0
        keys = unique_sorted(users * self.num_items + items)  # sorted by (user, item), distinct
        pos_user, pos_item = keys // self.num_items, keys % self.num_items
        counts = np.bincount(pos_user, minlength=self.num_users)
        full = np.flatnonzero(counts >= self.num_items)
        if full.size:
            raise ValueError(
                f"User {int(full[0])} has every one of the {self.num_items} items as a positive, "
                f"so no negative exists. Received: {full.size} such users. Fix: drop them "
                "from the positives or enlarge the catalogue."
            )
        offsets = np.concatenate([[0], np.cumsum(counts)])
        rank = np.arange(keys.size) - offsets[pos_user]
        sentinel = np.int64(max(self.num_users, 1)) * self.num_items
        # key -> 1 for each positive; the key -1 (never queried) keeps the table non-empty.
        self._positives = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(np.append(keys, -1), tf.int64),
                tf.constant(np.append(np.ones(keys.size, np.int64), 0)),
            ),
            default_value=tf.constant(0, tf.int64),
        )
        self._offsets = tf.constant(offsets)
        self._free = tf.constant(self.num_items - counts)  # non-positive items per user
        self._skip_keys = tf.constant(
            np.append(pos_user * self.num_items + pos_item - rank, sentinel)
        )
        self._generator = (
            tf.random.Generator.from_seed(seed)
            if seed is not None
            else tf.random.Generator.from_non_deterministic_state()
        )
        if distribution == "popularity":
            self._init_popularity(pos_user, pos_item, offsets, counts)

    def _init_popularity(self, pos_user, pos_item, offsets, counts) -> None:
        weights = np.bincount(pos_item, minlength=self.num_items).astype(np.float64) ** self.alpha
        if weights.sum() == 0:
            raise ValueError(
                "distribution='popularity' needs at least one positive to measure popularity. "
                "Received: no positives. Fix: pass the training interactions."
            )
        self.probabilities = weights / weights.sum()
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
                f"no popularity negative exists. Received: alpha={self.alpha}. Fix: use "
                "distribution='uniform', alpha=0, or drop such users."
            )
        # Non-positive mass before each positive: exclusive cdf minus earlier positives' mass.
        before = cdf[pos_item] - pos_weight - (prefix[:-1] - prefix[offsets[pos_user]])
        self._cdf = tf.constant(cdf)
        self._total = int(cdf[-1])
        self._prefix = tf.constant(prefix)
        self._free_mass = tf.constant(free_mass)
        self._before = tf.constant(np.append(before, np.iinfo(np.int64).max))
        self._search_steps = int(math.ceil(math.log2(int(counts.max(initial=0)) + 1))) + 1

    def sample(self, user_index, num_negatives: int, seed=None) -> tf.Tensor:
        """Returns int64 [B, num_negatives] items, none of them a positive of its row's user.

        ``user_index`` is an int tensor [B]. Without ``seed`` each call draws anew from the
        sampler's generator; with ``seed`` (shape [2] ints) the draw is stateless and
        reproducible, which is how it is used inside ``tf.data`` pipelines.
        """
        if (
            isinstance(num_negatives, bool)
            or not isinstance(num_negatives, int)
            or num_negatives < 0
        ):
            raise ValueError(
                f"num_negatives must be an int >= 0. Received: num_negatives={num_negatives!r}."
            )
        users = tf.cast(tf.reshape(user_index, [-1]), tf.int64)
        batch = tf.shape(users, out_type=tf.int64)[0]
        flat_users = tf.repeat(users, num_negatives)
        if seed is None:
            seed = self._generator.make_seeds(1)[:, 0]
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), _ROUNDS + 2)
        if self.distribution == "uniform":
            draw, exact = self._uniform_candidates, self._exact_uniform
        else:
            draw, exact = self._popularity_candidates, self._exact_popularity
        items = draw(flat_users, seeds[0])
        # Later rounds and the fallback only touch the (usually few) rejected positions.
        left = tf.where(self._is_positive(flat_users, items))[:, 0]
        left_users = tf.gather(flat_users, left)
        left_items = tf.zeros_like(left_users)
        accepted = tf.zeros(tf.shape(left_users), tf.bool)
        for round_ in range(1, _ROUNDS):
            candidates = draw(left_users, seeds[round_])
            fresh = tf.logical_not(accepted | self._is_positive(left_users, candidates))
            left_items = tf.where(fresh, candidates, left_items)
            accepted = accepted | fresh
        still = tf.where(tf.logical_not(accepted))[:, 0]
        fallback = exact(tf.gather(left_users, still), seeds[_ROUNDS])
        left_items = tf.tensor_scatter_nd_update(left_items, still[:, None], fallback)
        items = tf.tensor_scatter_nd_update(items, left[:, None], left_items)
        return tf.reshape(items, tf.stack([batch, num_negatives]))

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


def training_dataset(
    positives: dict[str, np.ndarray],
    movie_ids: np.ndarray,
    sampler: NegativeSampler,
    num_negatives: int = 4,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of positives (label 1.0) mixed with freshly sampled negatives (label 0.0).

    Every epoch (each iteration over the dataset) emits each row of ``positives`` once plus
    ``num_negatives`` copies whose ``movie_index`` (and ``movie_id``, from ``movie_ids``) are
    replaced by negatives drawn by ``sampler`` for that row's user; all other columns (1-D or
    2-D, e.g. a history matrix) are copied from the positive row. Elements are dicts of
    batched tensors (strings as tf.string) with an extra float32 ``label``; batches hold
    ``batch_size`` rows (the last one fewer). With ``shuffle`` the positives' order and the
    rows within each chunk of ~64k rows are shuffled anew each epoch. ``seed`` makes the whole
    sequence of epochs reproducible; negatives still differ from epoch to epoch.
    """
    if not isinstance(sampler, NegativeSampler):
        raise ValueError(f"sampler must be a NegativeSampler. Received: {type(sampler).__name__}.")
    for name, value in (("num_negatives", num_negatives), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an int >= 1. Received: {name}={value!r}.")
    if "label" in positives:
        raise ValueError("positives already has a 'label' column. Fix: rename or drop it.")
    movie_ids = np.asarray(movie_ids)
    if movie_ids.shape != (sampler.num_items,):
        raise ValueError(
            f"movie_ids must list the sampler's {sampler.num_items} items. Received: shape "
            f"{movie_ids.shape}. Fix: pass MovieLens.movie_ids."
        )
    columns = {name: np.asarray(value) for name, value in positives.items()}
    for name in ("user_index", "movie_index"):
        if name not in columns:
            raise ValueError(
                f"positives needs a {name!r} column. Received: columns={sorted(columns)}."
            )
    lengths = {len(value) for value in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            f"positives must be a non-empty table of equal-length columns. Received: lengths "
            f"{ {name: len(value) for name, value in columns.items()} }."
        )
    count = lengths.pop()
    users, items = columns["user_index"], columns["movie_index"]
    if users.min() < 0 or items.min() < 0 or items.max() >= sampler.num_items:
        raise ValueError(
            f"positives' indices are out of range. Received: user_index min {users.min()}, "
            f"movie_index in [{items.min()}, {items.max()}], sampler.num_items="
            f"{sampler.num_items}. Fix: build the sampler from the same catalogue."
        )
    group = 1 + int(num_negatives)
    per_chunk = max(1, -(-max(int(batch_size), 1 << 16) // group))
    num_chunks = -(-count // per_chunk)
    tensors = {name: tf.constant(value) for name, value in columns.items()}
    tensors["movie_index"] = tf.cast(tensors["movie_index"], tf.int64)
    tensors["user_index"] = tf.cast(tensors["user_index"], tf.int64)
    catalogue = tf.constant(movie_ids)

    def chunk(order, epoch_seed, index):
        rows = order[index * per_chunk : tf.minimum((index + 1) * per_chunk, count)]
        rows = tf.sort(rows)  # ascending rows keep the gathers below cache-friendly
        seeds = tf.random.experimental.stateless_split(tf.stack([epoch_seed, index]), 2)
        picked = {name: tf.gather(value, rows) for name, value in tensors.items()}
        negatives = sampler.sample(picked["user_index"], group - 1, seed=seeds[0])
        items = tf.concat([picked["movie_index"][:, None], negatives], axis=1)
        # Row r of the chunk is slot r % group of positive r // group (slot 0: the positive).
        out = {name: tf.repeat(value, group, axis=0) for name, value in picked.items()}
        out["movie_index"] = tf.reshape(items, [-1])
        out["label"] = tf.tile(tf.one_hot(0, group, dtype=tf.float32), tf.shape(rows))
        if "movie_id" in out:
            out["movie_id"] = tf.gather(catalogue, out["movie_index"])
        if shuffle:  # mix positives and negatives within the chunk (local, cheap gathers)
            mixed = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(out["label"], out_type=tf.int64)[0]), seed=seeds[1]
            )
            out = {name: tf.gather(value, mixed) for name, value in out.items()}
        return out

    def epoch(epoch_seed):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([epoch_seed, -1]))
        chunks = tf.data.Dataset.range(num_chunks)
        return chunks.map(
            lambda index: chunk(order, epoch_seed, index),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    dataset = epochs.flat_map(epoch).rebatch(int(batch_size))
    return dataset.prefetch(tf.data.AUTOTUNE)

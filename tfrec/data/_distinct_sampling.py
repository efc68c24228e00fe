"""Distinct per-user negatives for sampled evaluation (the numpy half of `NegativeSampler`).

Each user's negatives are `num_negatives` distinct items drawn without replacement, in proportion
to a weight (uniform, or popularity), from the items the user never interacted with (not seen,
not the target, weight > 0).

How: each user has its own counter-based random stream (splitmix64 of seed, user, draw number),
so a user's negatives depend only on (seed, user, target, seen set), never on the batch size or
on which other users are evaluated. Fast path: draw 2·M + 64 items i.i.d. from the weights and keep
the first M that are valid and not repeated; taking the first distinct valid draws of an i.i.d.
sequence is exactly successive sampling without replacement. Exact fallback (rows where too few
draws survive): keep the ones found and draw the rest by Gumbel-top-k over all remaining valid
items. Given the items found so far, successive sampling continues as sampling from the remaining
items, so the fallback is the same distribution, not an approximation.
"""

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_FALLBACK_ELEMENTS = 1 << 20  # bounds the dense [rows, num_items] fallback work arrays


def _mix64(x):
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _MUL1
    x = (x ^ (x >> np.uint64(27))) * _MUL2
    return x ^ (x >> np.uint64(31))


def _random_bits(seed, stream, user_index, count):
    """uint64 [B, count]: draw j of `stream` for each user, a pure function of its arguments."""
    users = np.asarray(user_index, dtype=np.int64).astype(np.uint64)
    head = _mix64(np.array([seed], dtype=np.uint64) * _GOLDEN + np.array([stream], np.uint64))
    state = _mix64(_mix64(head ^ users) + _GOLDEN)
    steps = (np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)[None, :]
    return _mix64(state[:, None] + steps)


def _unit_floats(bits, open_interval=False):
    """Top 53 bits as floats in [0, 1), or in (0, 1) if `open_interval`."""
    mantissa = (bits >> np.uint64(11)).astype(np.float64)
    return (mantissa + (0.5 if open_interval else 0.0)) * 2.0**-53


class DistinctDraws:
    """Reproducible distinct draws of non-seen items per user; see the module docstring.

    Args:
      seen: `SeenItems` never drawn for their user.
      weights: Per-item non-negative float weights ``[num_items]`` (ones for uniform).
      uniform: Whether the weights are all equal (draws use a cheap modulo).
      seed: Non-negative int; same seed, same negatives for each user.
    """

    def __init__(self, seen, weights, uniform: bool, seed: int):
        self.num_items = int(seen.num_items)
        self.exclude = seen
        self.uniform = uniform
        self.seed = int(seed)
        self._positive = weights > 0
        self._log_weights = np.log(np.where(self._positive, weights, 1.0))
        self._cdf = np.cumsum(weights)
        positive_excluded = self._positive[seen.indices].astype(np.int64)
        self._excluded_positive_cum = np.concatenate([[0], np.cumsum(positive_excluded)])

    def available(self, user_index, target_index):
        """How many items each (user, target) row can draw negatives from (int64 [B])."""
        user_index = np.asarray(user_index, dtype=np.int64)
        target_index = np.asarray(target_index, dtype=np.int64)
        cum, indptr = self._excluded_positive_cum, self.exclude.indptr
        excluded = cum[indptr[user_index + 1]] - cum[indptr[user_index]]
        target_counts = self._positive[target_index] & ~self.exclude.contains(
            user_index, target_index
        )
        return int(self._positive.sum()) - excluded - target_counts

    def sample(self, user_index, target_index, num_negatives):
        """Returns int64 [B, num_negatives]: distinct negatives per row, none excluded nor the target.

        Raises ValueError if some user has fewer than `num_negatives` items available.
        """
        user_index = np.asarray(user_index, dtype=np.int64)
        target_index = np.asarray(target_index, dtype=np.int64)
        num_negatives = int(num_negatives)
        available = self.available(user_index, target_index)
        if (available < num_negatives).any():
            row = int(np.argmax(available < num_negatives))
            raise ValueError(
                f"user {user_index[row]} has only {available[row]} items to draw negatives from, "
                f"fewer than num_negatives={num_negatives}; lower num_negatives. "
                f"Received: num_negatives={num_negatives}"
            )
        num_draws = 2 * num_negatives + 64
        bits = _random_bits(self.seed, 0, user_index, num_draws)
        if self.uniform:
            draws = (bits % np.uint64(self.num_items)).astype(np.int64)
        else:
            targets = _unit_floats(bits) * self._cdf[-1]
            draws = np.minimum(
                np.searchsorted(self._cdf, targets, side="right"), self.num_items - 1
            )
        valid = self._first_occurrence(draws) & self._positive[draws]
        valid &= draws != target_index[:, None]
        valid &= ~self.exclude.contains(user_index, draws)
        picks = np.argsort(~valid, axis=1, kind="stable")[:, :num_negatives]
        negatives = np.take_along_axis(draws, picks, axis=1)
        found = np.minimum(valid.sum(axis=1), num_negatives)
        short = np.flatnonzero(found < num_negatives)
        chunk = max(1, _FALLBACK_ELEMENTS // self.num_items)
        for start in range(0, short.size, chunk):
            rows = short[start : start + chunk]
            negatives[rows] = self._complete(
                user_index[rows], target_index[rows], negatives[rows], found[rows]
            )
        return negatives

    @staticmethod
    def _first_occurrence(draws):
        """Bool mask: True at the first appearance of each value in its row."""
        order = np.argsort(draws, axis=1, kind="stable")
        ranked = np.take_along_axis(draws, order, axis=1)
        first = np.ones(draws.shape, dtype=bool)
        first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        mask = np.empty(draws.shape, dtype=bool)
        np.put_along_axis(mask, order, first, axis=1)
        return mask

    def _complete(self, user_index, target_index, partial, found):
        """Exact fallback: fills columns found.. of `partial` by Gumbel-top-k over valid items."""
        rows = np.arange(user_index.size)
        num_negatives = partial.shape[1]
        invalid = self.exclude.dense_mask(user_index) | ~self._positive[None, :]
        invalid[rows, target_index] = True
        already = np.arange(num_negatives)[None, :] < found[:, None]
        invalid[np.repeat(rows, found), partial[already]] = True
        gumbel = -np.log(
            -np.log(_unit_floats(_random_bits(self.seed, 1, user_index, self.num_items), True))
        )
        keys = np.where(invalid, -np.inf, self._log_weights[None, :] + gumbel)
        top = np.argpartition(-keys, num_negatives - 1, axis=1)[:, :num_negatives]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(top, order, axis=1)
        fill_column = np.clip(np.arange(num_negatives)[None, :] - found[:, None], 0, None)
        return np.where(already, partial, np.take_along_axis(best, fill_column, axis=1))

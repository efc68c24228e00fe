"""What each user already has: the one home of per-user item sets, in numpy and in graphs.

Every part of a recommender needs "the items this user already interacted with": evaluation
masks them from full ranking and never samples them as negatives, training never draws them
as negatives, and a served `recommend` must never return them. `SeenItems` stores them as CSR
(indptr, indices), compact (one int per interaction) and vectorized: a dense ``[B, N]`` mask for
a batch of users and a membership test for (user, item) pairs by binary search on sorted keys
``user * num_items + item``. `SeenItems.lookup` turns the same set into `SeenItemsLookup`, a
`tf.Module` keyed by raw user id that travels inside SavedModels.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["SeenItems", "SeenItemsLookup"]


def _as_index_array(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D integer array. Received: {name}.shape={array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices. Received: {name}.dtype={array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(array, upper, name, bound_name):
    if array.size and (array.min() < 0 or array.max() >= upper):
        bad = array[(array < 0) | (array >= upper)][0]
        raise ValueError(
            f"{name} must lie in [0, {bound_name}={upper}). Received: {name} value {bad}"
        )


@dataclass(frozen=True, eq=False)
class SeenItems:
    """Items each user has, in CSR form: user u's items are indices[indptr[u]:indptr[u+1]].

    Within each user the items are sorted and unique (`from_pairs` guarantees it; the
    constructor checks it). Build one with `SeenItems.from_pairs(train_users, train_items, ...)`
    (concatenate train and valid interactions first to cover both).

    Attributes:
        indptr: int64 array [num_users + 1], non-decreasing, indptr[0] == 0.
        indices: int64 array [indptr[-1]], item indices in [0, num_items).
        num_items: size of the item universe.
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_items: int

    def __post_init__(self):
        indptr = _as_index_array(self.indptr, "indptr")
        indices = _as_index_array(self.indices, "indices")
        if isinstance(self.num_items, bool) or not isinstance(self.num_items, int | np.integer):
            raise ValueError(
                f"num_items must be an integer. Received: num_items={self.num_items!r}"
            )
        if self.num_items < 1:
            raise ValueError(f"num_items must be positive. Received: num_items={self.num_items}")
        if indptr.size < 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any():
            raise ValueError(
                "indptr must start at 0 and be non-decreasing (CSR row pointers). "
                f"Received: indptr[:5]={indptr[:5].tolist()}"
            )
        if indptr[-1] != indices.size:
            raise ValueError(
                f"indptr[-1] must equal len(indices). Received: indptr[-1]={indptr[-1]}, "
                f"len(indices)={indices.size}"
            )
        _check_range(indices, self.num_items, "indices", "num_items")
        keys = self._keys_for(indptr, indices, int(self.num_items))
        if (np.diff(keys) <= 0).any():
            raise ValueError(
                "indices must be sorted and unique within each user; build the set with "
                "SeenItems.from_pairs. Received: unsorted or duplicate indices"
            )
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "num_items", int(self.num_items))
        object.__setattr__(self, "_keys", keys)

    @staticmethod
    def _keys_for(indptr, indices, num_items):
        users = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
        return users * num_items + indices

    @classmethod
    def from_pairs(cls, user_index, item_index, num_users, num_items):
        """Builds the set from parallel (user, item) arrays; duplicates are dropped.

        Args:
            user_index: int array [N], users in [0, num_users).
            item_index: int array [N], items in [0, num_items).
            num_users: number of users in the universe (rows of the CSR).
            num_items: number of items in the universe.
        """
        users = _as_index_array(user_index, "user_index")
        items = _as_index_array(item_index, "item_index")
        if users.shape != items.shape:
            raise ValueError(
                "user_index and item_index must have the same length. "
                f"Received: len(user_index)={users.size}, len(item_index)={items.size}"
            )
        for value, name in ((num_users, "num_users"), (num_items, "num_items")):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        _check_range(users, num_users, "user_index", "num_users")
        _check_range(items, num_items, "item_index", "num_items")
        keys = np.unique(users * int(num_items) + items)
        counts = np.bincount(keys // num_items, minlength=num_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr=indptr, indices=keys % num_items, num_items=int(num_items))

    @classmethod
    def empty(cls, num_users, num_items):
        """A set excluding nothing, for models evaluated without any seen items."""
        return cls(np.zeros(num_users + 1, np.int64), np.zeros(0, np.int64), num_items)

    @property
    def num_users(self):
        """Number of users (rows) in the set."""
        return self.indptr.size - 1

    def check_users(self, user_index, name="user_index"):
        """Raises ValueError if any user is outside [0, num_users)."""
        _check_range(np.asarray(user_index), self.num_users, name, "seen.num_users")

    def counts(self, user_index):
        """Number of excluded items for each user in `user_index` (int64 array [B])."""
        user_index = np.asarray(user_index, dtype=np.int64)
        return self.indptr[user_index + 1] - self.indptr[user_index]

    def dense_mask(self, user_index):
        """Bool array [B, num_items], True where the item is excluded for that row's user."""
        user_index = np.asarray(user_index, dtype=np.int64)
        starts = self.indptr[user_index]
        lengths = self.indptr[user_index + 1] - starts
        total = int(lengths.sum())
        rows = np.repeat(np.arange(user_index.size), lengths)
        # Position of each entry inside the concatenation of the users' CSR slices.
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        mask = np.zeros((user_index.size, self.num_items), dtype=bool)
        mask[rows, self.indices[offsets + np.arange(total)]] = True
        return mask

    def contains(self, user_index, item_index):
        """Bool array shaped like `item_index`: whether item_index[b, ...] is excluded for user b.

        `user_index` is [B] and `item_index` is [B] or [B, M]; runs as one binary search.
        """
        user_index = np.asarray(user_index, dtype=np.int64)
        item_index = np.asarray(item_index, dtype=np.int64)
        users = user_index.reshape((-1,) + (1,) * (item_index.ndim - 1))
        query = users * self.num_items + item_index
        if self._keys.size == 0:
            return np.zeros(query.shape, dtype=bool)
        position = np.minimum(np.searchsorted(self._keys, query), self._keys.size - 1)
        return self._keys[position] == query

    def lookup(self, user_ids, known_users=None) -> "SeenItemsLookup":
        """This set as a `SeenItemsLookup` keyed by raw user id (``user_ids[u]`` names row u).

        `known_users` adds ids the lookup should report as known even without a row here
        (e.g. users of the side-feature table); they get no seen items.
        """
        return SeenItemsLookup(self, user_ids, known_users)


def _utf8(values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "S":
        return values
    if values.dtype.kind not in "UO":
        values = values.astype(str)
    return np.char.encode(values.astype(str), "utf-8")


class SeenItemsLookup(tf.Module):
    """`SeenItems` inside a graph, keyed by raw user id: masks, padded lists, known users.

    Exists so that a SavedModel masks a user's items with a few vectorised ops: a hash table
    maps a user id to a CSR row, and the row's item indices become a ``[B, N]`` mask (`mask`) or
    a ``[B, S]`` list padded with -1 (`matrix`, what index searches take). Ids the set does not
    know map to an extra empty row, so masking never fails.

    Args:
      seen: The `SeenItems` (row u belongs to ``user_ids[u]``).
      user_ids: Raw id of each row of `seen`, ``[seen.num_users]``.
      known_users: More ids to report as known (with no seen items), or None.
    """

    def __init__(self, seen: SeenItems, user_ids, known_users=None):
        super().__init__(name="seen_items")
        ids = _utf8(user_ids)
        if ids.shape != (seen.num_users,):
            raise ValueError(
                f"`user_ids` must name each of the {seen.num_users} rows of the seen set. "
                f"Received: user_ids.shape={ids.shape}"
            )
        extra = _utf8([] if known_users is None else known_users)
        extra = np.setdiff1d(np.unique(extra), ids)
        if np.unique(ids).size != ids.size:
            raise ValueError("`user_ids` must be distinct. Received: duplicated user ids")
        all_ids = np.concatenate([ids, extra])
        indptr = np.concatenate([seen.indptr, np.full(extra.size + 1, seen.indptr[-1])])
        self.num_users = int(all_ids.size)
        self.num_items = int(seen.num_items)
        self.indptr = tf.Variable(indptr.astype(np.int64), trainable=False, name="indptr")
        self.indices = tf.Variable(seen.indices.astype(np.int64), trainable=False, name="indices")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(all_ids, tf.string), tf.range(self.num_users, dtype=tf.int64)
            ),
            default_value=self.num_users,
        )
        self.example_users = all_ids[: min(2, all_ids.size)]

    def rows(self, user_ids: tf.Tensor) -> tf.Tensor:
        """CSR row of each user id; unknown ids get the trailing empty row."""
        return self.table.lookup(user_ids)

    def known(self, user_ids: tf.Tensor) -> tf.Tensor:
        """Whether each user id was known when the lookup was built, ``[B]`` bool."""
        return self.rows(user_ids) < self.num_users

    def _positions(self, user_ids: tf.Tensor) -> tf.RaggedTensor:
        rows = self.rows(user_ids)
        return tf.ragged.range(tf.gather(self.indptr, rows), tf.gather(self.indptr, rows + 1))

    def mask(self, user_ids: tf.Tensor) -> tf.Tensor:
        """``[B, N]`` bool: True where the item is one the user has."""
        positions = self._positions(user_ids)
        items = tf.gather(self.indices, positions.flat_values)
        coords = tf.stack([positions.value_rowids(), items], axis=1)
        shape = tf.stack([tf.shape(user_ids, out_type=tf.int64)[0], self.num_items])
        hits = tf.scatter_nd(coords, tf.ones_like(items, dtype=tf.int32), shape)
        return hits > 0

    def matrix(self, user_ids: tf.Tensor) -> tf.Tensor:
        """``[B, S]`` int64 item indices each user has, padded with -1 (S = the longest)."""
        return tf.gather(self.indices, self._positions(user_ids)).to_tensor(default_value=-1)

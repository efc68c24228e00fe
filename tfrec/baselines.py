"""Classical recommenders (Popularity, ItemKNN, EASE) behind the evaluation score_fn interface.

A neural model is only worth its cost if it beats these, so every benchmark reports them
next to the Keras models, evaluated by the same `tfrec.evaluation` protocols. They are pure numpy
(scipy is not a dependency) and fit in seconds on MovieLens-100k/1M.

All models take implicit feedback: the (user, item) training pairs, duplicates collapsed to a
binary user-item matrix X [num_users, num_items] (ratings are ignored). Memory is
O(num_users · num_items) for X plus O(num_items²) for ItemKNN and EASE (1682 items: 11 MB in
float32; 20k items would need 1.6 GB, so use a sparse or approximate method beyond that).

Usage:
    model = EASE(l2=500.0).fit(train_users, train_items, num_users, num_items)
    full_ranking(model.score_fn, test_users, test_items, num_items, exclude)
"""

import numpy as np

__all__ = ["Popularity", "ItemKNN", "EASE"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _index_array(values, upper, name, bound_name):
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices. Received: {name}.dtype={array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= upper):
        bad = array[(array < 0) | (array >= upper)][0]
        raise ValueError(
            f"{name} must lie in [0, {bound_name}={upper}). Received: {name} value {bad}"
        )
    return array


class _Baseline:
    """Shared fit/score plumbing: validation, the binary interaction matrix, score_fn."""

    def __init__(self):
        self.num_users = None
        self.num_items = None

    def fit(self, user_index, item_index, num_users, num_items):
        """Fits on training (user, item) pairs and returns self.

        Args:
            user_index: int array [N], users in [0, num_users).
            item_index: int array [N], items in [0, num_items).
            num_users: size of the user universe.
            num_items: size of the item universe.
        """
        num_users = _positive_int(num_users, "num_users")
        num_items = _positive_int(num_items, "num_items")
        users = _index_array(user_index, num_users, "user_index", "num_users")
        items = _index_array(item_index, num_items, "item_index", "num_items")
        if users.ndim != 1 or users.shape != items.shape:
            raise ValueError(
                "user_index and item_index must be 1-D arrays of the same length. "
                f"Received: shapes {users.shape} and {items.shape}"
            )
        if users.size == 0:
            raise ValueError(
                "there are no training interactions to fit on. Received: len(user_index)=0"
            )
        self.num_users, self.num_items = num_users, num_items
        self._fit(users, items)
        return self

    def _fit(self, users, items):
        raise NotImplementedError

    def _check_fitted(self):
        if self.num_items is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(...) first.")

    def _binary_matrix(self, users, items, dtype=np.float32):
        matrix = np.zeros((self.num_users, self.num_items), dtype=dtype)
        matrix[users, items] = 1
        return matrix

    def score_all(self, user_index):
        """Scores of every item for each user: float array [B, num_items]."""
        self._check_fitted()
        users = _index_array(user_index, self.num_users, "user_index", "num_users")
        return self._score_all(users)

    def score_fn(self, user_index, item_index):
        """The evaluation interface: (user_index [B], item_index [B, C]) -> scores [B, C]."""
        self._check_fitted()
        items = _index_array(item_index, self.num_items, "item_index", "num_items")
        users = _index_array(user_index, self.num_users, "user_index", "num_users")
        if users.ndim != 1 or items.ndim != 2 or items.shape[0] != users.size:
            raise ValueError(
                "score_fn expects user_index [B] and item_index [B, C]. "
                f"Received: user_index.shape={users.shape}, item_index.shape={items.shape}"
            )
        return np.take_along_axis(self._score_all(users), items, axis=1)

    def _score_all(self, users):
        raise NotImplementedError


class Popularity(_Baseline):
    """Scores every item by its number of training interactions, the same for every user.

    The floor any personalised model must clear; under sampled protocols it is often
    surprisingly strong. Duplicate (user, item) pairs each count.
    """

    def _fit(self, users, items):
        self.item_counts = np.bincount(items, minlength=self.num_items).astype(np.float32)

    def _score_all(self, users):
        return np.broadcast_to(self.item_counts, (users.size, self.num_items)).copy()

    def score_fn(self, user_index, item_index):
        """Training count of each candidate item (user_index only sets the batch size)."""
        self._check_fitted()
        items = _index_array(item_index, self.num_items, "item_index", "num_items")
        return self.item_counts[items]


class ItemKNN(_Baseline):
    """Item-based nearest neighbours: cosine similarity over the binary user-item matrix.

    sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrink), self-similarity 0. For each item j only
    its `k` most similar items are kept; a user's score for j is the sum of sim(i, j) over the
    items i the user has among j's neighbours. Dense numpy: memory O(num_items²).

    Args:
        k: neighbours kept per item (positive int).
        shrink: non-negative constant added to the denominator; damps similarities supported by
            few common users.
    """

    def __init__(self, k=50, shrink=0.0):
        super().__init__()
        self.k = _positive_int(k, "k")
        if not np.isfinite(shrink) or shrink < 0:
            raise ValueError(
                f"shrink must be a finite non-negative number. Received: shrink={shrink!r}"
            )
        self.shrink = float(shrink)

    def _fit(self, users, items):
        self._matrix = self._binary_matrix(users, items)
        co_counts = self._matrix.T @ self._matrix
        norms = np.sqrt(np.diag(co_counts))
        denominator = np.outer(norms, norms) + self.shrink
        similarity = np.divide(
            co_counts, denominator, out=np.zeros_like(co_counts), where=denominator > 0
        )
        np.fill_diagonal(similarity, 0.0)
        if self.k < self.num_items:
            # Column j keeps its k largest entries: the neighbours i of item j.
            keep = np.argpartition(-similarity, self.k - 1, axis=0)[: self.k]
            weights = np.zeros_like(similarity)
            np.put_along_axis(weights, keep, np.take_along_axis(similarity, keep, axis=0), axis=0)
            similarity = weights
        self.similarity = similarity

    def _score_all(self, users):
        return self._matrix[users] @ self.similarity


class EASE(_Baseline):
    """EASE (Steck, 2019): a closed-form item-item linear autoencoder, strong and exact.

    Solves min_B ||X - XB||² + l2·||B||² subject to diag(B) = 0, whose solution is
    B = I - P·diagMat(1/diag(P)) with P = (XᵀX + l2·I)⁻¹; a user's scores are x_u B. One
    num_items x num_items inverse: O(num_items³) time, O(num_items²) memory.

    Args:
        l2: positive L2 regularisation (Steck reports a few hundred for MovieLens).
    """

    def __init__(self, l2=500.0):
        super().__init__()
        if not np.isfinite(l2) or l2 <= 0:
            raise ValueError(f"l2 must be a finite positive number. Received: l2={l2!r}")
        self.l2 = float(l2)

    def _fit(self, users, items):
        self._matrix = self._binary_matrix(users, items)
        gram = (self._matrix.T @ self._matrix).astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)

    def _score_all(self, users):
        return self._matrix[users] @ self.weights

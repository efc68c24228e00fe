"""A click model that turns recommendation lists and held-out interactions into click odds.

Offline, we cannot show two recommenders to real users, but we know what each user went on
to watch (the held-out interactions). The click model assumes a user clicks a recommended
item with probability `p_hit` if it is one of their held-out items and `p_background`
otherwise, each position being examined with a probability that may fall with the rank
(position bias). That turns two exported models' top-k lists into two per-user click-rate
tables, the ground truth an A/B simulation draws clicks from.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def log_position_bias(k: int) -> tuple[float, ...]:
    """Examination probability ``1 / log2(rank + 1)`` for ranks 1..k (the DCG discount)."""
    if not (isinstance(k, int) and k > 0):
        raise ValueError(f"`k` must be a positive int. Received: k={k!r}")
    return tuple(float(v) for v in 1.0 / np.log2(np.arange(2, k + 2)))


def index_items(*arrays, padding=None) -> tuple[np.ndarray, ...]:
    """Maps item ids of any dtype to integer indices shared by all `arrays` (same shapes).

    Exported models recommend movie ids (strings); the simulation works on integer indices.
    Pass both arms' ``[num_users, k]`` lists and the held-out items together so that an item
    gets the same index everywhere; entries equal to `padding` (e.g. ``""`` or ``b""`` for
    short lists) become -1.
    """
    if not arrays:
        raise ValueError("Pass at least one array of item ids. Received: no arrays")
    values = [np.asarray(a) for a in arrays]
    flat = np.concatenate([v.ravel() for v in values])
    _, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    if padding is not None:
        inverse[flat == padding] = -1
    ends = np.cumsum([v.size for v in values])[:-1]
    return tuple(
        part.reshape(v.shape) for part, v in zip(np.split(inverse, ends), values, strict=True)
    )


def truth_matrix(user_index, item_index, num_users: int) -> np.ndarray:
    """Held-out items per user as a ``[num_users, m]`` int array padded with -1.

    `user_index` and `item_index` are parallel arrays of held-out interactions (row indices
    of the users, column indices of the items, the same indexing as the recommendations).
    """
    users = np.asarray(user_index, dtype=np.int64)
    items = np.asarray(item_index, dtype=np.int64)
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(
            "`user_index` and `item_index` must be 1-D arrays of the same length. Received "
            f"shapes: {users.shape}, {items.shape}"
        )
    if users.size and (users.min() < 0 or users.max() >= num_users or items.min() < 0):
        raise ValueError(
            f"Indices must be non-negative and users below num_users={num_users}. Received: "
            f"users in [{users.min()}, {users.max()}], smallest item {items.min()}"
        )
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=num_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(users.size) - starts[users]
    out = np.full((num_users, max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
    out[users, slot] = items
    return out


def hits(recommendations, truth) -> np.ndarray:
    """``[num_users, k]`` booleans: is each recommended item one of the user's held-out items?

    `truth` is ``[num_users, m]`` (padded with -1, see `truth_matrix`) or ``[num_users]``
    (one held-out item each). Negative recommendation entries (padding) never hit.
    Vectorised: items are offset by user so one ``np.isin`` tests every row at once.
    """
    recs = np.asarray(recommendations)
    truth = np.asarray(truth)
    if truth.ndim == 1:
        truth = truth[:, None]
    if recs.ndim != 2 or truth.ndim != 2 or recs.shape[0] != truth.shape[0]:
        raise ValueError(
            "`recommendations` must be [num_users, k] and `truth` [num_users, m] or "
            f"[num_users]. Received shapes: {recs.shape}, {np.shape(truth)}"
        )
    if not (np.issubdtype(recs.dtype, np.integer) and np.issubdtype(truth.dtype, np.integer)):
        raise ValueError(
            "Recommendations and truth must be integer item indices. Received dtypes: "
            f"{recs.dtype}, {truth.dtype}"
        )
    recs, truth = recs.astype(np.int64), truth.astype(np.int64)
    width = int(max(recs.max(initial=0), truth.max(initial=0))) + 1
    offset = np.arange(recs.shape[0], dtype=np.int64)[:, None] * width
    wanted = (truth + offset)[truth >= 0]
    return np.isin(recs + offset, wanted) & (recs >= 0)


@dataclasses.dataclass(frozen=True)
class ClickModel:
    """How a simulated user responds to a top-k list.

    Args:
      p_hit: Probability of clicking an examined item that is one of the user's held-out
        items.
      p_background: Probability of clicking any other examined item.
      position_bias: Examination probability per rank (a sequence at least k long, e.g.
        `log_position_bias(k)`); None examines every position.
    """

    p_hit: float = 0.5
    p_background: float = 0.01
    position_bias: tuple[float, ...] | None = None

    def __post_init__(self):
        for name in ("p_hit", "p_background"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and 0 <= value <= 1):
                raise ValueError(f"`{name}` must be a probability. Received: {name}={value!r}")
        if self.position_bias is not None:
            bias = tuple(float(b) for b in self.position_bias)
            if not bias or not all(0 <= b <= 1 for b in bias):
                raise ValueError(
                    "`position_bias` must be examination probabilities in [0, 1], one per "
                    f"rank. Received: position_bias={self.position_bias!r}"
                )
            object.__setattr__(self, "position_bias", bias)

    def probabilities(self, recommendations, truth) -> np.ndarray:
        """``[num_users, k]`` click probabilities of each recommended slot."""
        hit = hits(recommendations, truth)
        shown = np.asarray(recommendations) >= 0
        p = np.where(hit, self.p_hit, self.p_background) * shown
        if self.position_bias is not None:
            k = p.shape[1]
            if len(self.position_bias) < k:
                raise ValueError(
                    f"`position_bias` has {len(self.position_bias)} ranks but the lists have "
                    f"k={k}. Fix: pass one examination probability per rank, e.g. "
                    "log_position_bias(k)."
                )
            p = p * np.asarray(self.position_bias[:k])
        return p

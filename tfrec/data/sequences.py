"""Per-user item sequences for sequential recommenders: training windows and next-item targets.

Why this exists: a sequential model (GRU4Rec, SASRec, BERT4Rec) reads a user as the ordered list
of what they watched and learns to predict what comes next. Its training examples are windows
of each user's chronological sequence, left-padded to a fixed length L so that the most recent
item always sits in the last column; every position whose next item is known is a target. Long
histories are cut from the end into consecutive windows so no interaction is wasted; the
history a model sees at valid/test time is `tfrec.data.last_history` of what is known then.
Time order is (timestamp, file order), as everywhere in `tfrec.data`.
"""

from __future__ import annotations

import numpy as np

from tfrec.data.splits import rank_in_user, require_column, time_order

PAD = -1
"""Item index marking padding in sequences and positions without a target."""


def _check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise ValueError(
            f"length must be a positive integer. Received: length={length!r}. Fix: e.g. 50."
        )
    return int(length)


def sequence_windows(interactions: dict, length: int) -> dict:
    """Every user's chronological item sequence cut into left-padded windows of ``length + 1``.

    A user with n interactions gives ``ceil((n - 1) / length)`` windows (none if n < 2): the
    last window ends at the newest item, each earlier one ends where the next one's targets
    begin, and the first is left-padded with `PAD`. Column t of ``items[:, :-1]`` is followed by
    column t of ``items[:, 1:]``, so ``inputs = items[:, :-1]`` and ``targets = items[:, 1:]``
    give each position's next item. A position counts only where its input is real
    (``inputs >= 0``): the last padding position's target is the user's first item, which has
    nothing before it. So masked, every item after a user's first is a target exactly once.

    Args:
      interactions: Table with ``user_index``, ``movie_index`` and ``timestamp`` columns.
      length: L, the input length (the model's ``max_length``).

    Returns:
      ``{"user_index": [W], "items": [W, L + 1]}`` int64, windows of one user consecutive
      and oldest first.
    """
    length = _check_length(length)
    users = np.asarray(require_column(interactions, "user_index"), np.int64)
    items = np.asarray(require_column(interactions, "movie_index"), np.int64)
    order, _ = time_order(interactions, per_user=True)
    rank, size = rank_in_user(order, users)
    users, items = users[order], items[order]
    starts = np.flatnonzero(rank == 0)
    sizes = size[starts]
    count = np.where(sizes >= 2, -(-(sizes - 1) // length), 0)  # windows per user
    window_user = np.repeat(np.arange(starts.size), count)
    # Window j (counted from the newest) of a user ends at position size - 1 - j * length.
    from_newest = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    from_newest = np.repeat(count, count) - 1 - from_newest  # oldest window first
    end = starts[window_user] + sizes[window_user] - 1 - from_newest * length
    offsets = np.arange(-length, 1)[None, :]
    positions = end[:, None] + offsets
    valid = positions >= starts[window_user][:, None]
    windows = np.where(valid, items[np.maximum(positions, 0)], PAD)
    return {"user_index": users[starts[window_user]], "items": windows.astype(np.int64)}

"""Sequence context features: each rating's recent history, and each user's latest history.

Why this exists: sequential and context-aware models condition on what a user watched before.
For training rows the history must be strictly earlier than the row (no leakage of the label or
of the future); at serving / evaluation time a user's context is the tail of what is known.
Time order is (timestamp, file order), as in :mod:`tfrec.data.splits`. Histories are ordered
sequences: movie_ids oldest to newest with the most recent in the last column, padded with ""
on the left, so a sequence model reads them as they are and a pooling model ignores the order.
"""

from __future__ import annotations

import numpy as np

from tfrec.data._arrays import index_of
from tfrec.data.splits import rank_in_user, require_column, time_order

Table = dict[str, np.ndarray]


def _check_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise ValueError(
            f"length must be a positive integer. Received: length={length!r}. Fix: e.g. 20."
        )
    return int(length)


def _movie_ids(ratings: Table) -> np.ndarray:
    if "movie_id" not in ratings:
        raise ValueError(
            f"The ratings table needs a 'movie_id' column. Received: columns={sorted(ratings)}. "
            "Fix: pass MovieLens.ratings or a row subset of it."
        )
    movies = np.asarray(ratings["movie_id"])
    return movies if movies.dtype.kind == "U" else movies.astype(str)


def recent_history(ratings: Table, length: int = 20) -> np.ndarray:
    """For each rating, the movie_ids of the same user's ``length`` latest *earlier* ratings.

    Returns a unicode array [num_ratings, length], oldest to newest (the latest earlier rating in
    the last column), "" padded on the left. A row's history
    holds only ratings strictly before it in (timestamp, file order), so computing it on the
    full table never leaks the row itself or anything later into its features. Memory is
    num_ratings x length x (4 bytes per id character), e.g. 32 MB for ml-100k at length 20.
    """
    length = _check_length(length)
    movies = _movie_ids(ratings)
    order, user = time_order(ratings, per_user=True)
    rank, _ = rank_in_user(order, user)
    ordered = movies[order]
    history = np.full((order.size, length), "", dtype=movies.dtype)
    for lag in range(1, length + 1):  # loop over history slots, vectorized over rows
        rows = np.flatnonzero(rank >= lag)
        history[rows, length - lag] = ordered[rows - lag]
    out = np.empty_like(history)
    out[order] = history
    return out


def last_history(ratings: Table, user_ids: np.ndarray | None = None, length: int = 20) -> Table:
    """Per user, the movie_ids of their ``length`` latest ratings (oldest to newest, "" left-padded).

    Returns ``{"user_id": U [n_users], "history": U [n_users, length]}``. With ``user_ids`` (e.g.
    ``MovieLens.user_ids``) rows follow that universe and users without ratings get an empty
    history; otherwise rows are the distinct users of ``ratings`` in sorted id order.
    """
    length = _check_length(length)
    movies = _movie_ids(ratings)
    if "user_id" not in ratings:
        raise ValueError(
            f"The ratings table needs a 'user_id' column. Received: columns={sorted(ratings)}."
        )
    ids = np.asarray(ratings["user_id"])
    if user_ids is None:
        universe, user = np.unique(ids, return_inverse=True)
        user = user.reshape(-1)
    else:
        universe = np.asarray(user_ids)
        user = index_of(ids, universe, "user_id", "user_ids")
    timestamp = np.asarray(require_column(ratings, "timestamp"))
    order = np.lexsort((np.arange(ids.size), timestamp, user))
    rank, size = rank_in_user(order, user)
    from_end = size - 1 - rank
    keep = from_end < length
    history = np.full((universe.size, length), "", dtype=movies.dtype)
    history[user[order][keep], length - 1 - from_end[keep]] = movies[order][keep]
    return {"user_id": universe, "history": history}

"""The data as it was at an earlier time: the earliest share of ratings, and who existed then.

Why this exists: retraining is rehearsed offline by pretending the past is the present. A model
trained on an early *slice* of MovieLens is the "live" model; the full data (or a later slice)
is what arrived since, with users and movies the live model has never seen. `time_slice`
keeps the earliest ratings in time order (timestamp, then file order, as every split here) and
only the users and movies that have a rating by then, so ids first seen later are genuinely
new to a model trained on the slice. The result is an ordinary `MovieLens`, so every split,
model and command works on it unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from tfrec.data.movielens import MovieLens, from_tables
from tfrec.data.parsers import Tables
from tfrec.data.splits import take, time_order

_INDEX_COLUMNS = ("user_index", "movie_index")


def _check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating):
        raise ValueError(
            f"`fraction` must be a number in (0, 1]. Received: fraction={fraction!r}. "
            "Fix: e.g. fraction=0.5 for the earliest half of the ratings."
        )
    value = float(fraction)
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(
            f"`fraction` must be in (0, 1]. Received: fraction={fraction!r}. "
            "Fix: e.g. fraction=0.5 for the earliest half of the ratings."
        )
    return value


def time_slice(ml: MovieLens, fraction: float) -> MovieLens:
    """`ml` as it was when only its earliest `fraction` of ratings existed.

    Keeps the first ``round_half_up(num_ratings * fraction)`` ratings in time order, the
    movies and users that have at least one of them (in their original table order), and
    re-indexes them. ``fraction=1`` returns `ml` itself.

    Example:
      >>> ml = load_movielens("100k")
      >>> past = time_slice(ml, 0.5)          # 50,000 ratings, 491 users, 1,466 movies
    """
    fraction = _check_fraction(fraction)
    if fraction == 1.0:
        return ml
    order, _ = time_order(ml.ratings, per_user=False)
    count = int(math.floor(ml.num_ratings * fraction + 0.5))
    if count < 1:
        raise ValueError(
            f"`fraction` keeps no rating of the {ml.num_ratings} there are. Received: "
            f"fraction={fraction!r}. Fix: use a larger fraction."
        )
    rows = np.sort(order[:count])  # file order, as the table was
    ratings = take(ml.ratings, rows)
    users_kept = np.zeros(ml.num_users, bool)
    users_kept[ratings["user_index"]] = True
    movies_kept = np.zeros(ml.num_movies, bool)
    movies_kept[ratings["movie_index"]] = True
    ratings = {k: v for k, v in ratings.items() if k not in _INDEX_COLUMNS}
    movies = take(ml.movies, np.flatnonzero(movies_kept))
    users = None if ml.users is None else take(ml.users, np.flatnonzero(users_kept))
    origin = f"{ml.origin or ml.source}; earliest {fraction:.4g} of its ratings"
    return from_tables(Tables(ratings, movies, users), ml.variant, ml.source, origin)

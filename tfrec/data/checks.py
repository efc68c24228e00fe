"""Checks on ratings tables: rating scales, and one rating per (user, movie) pair.

Why this exists: a rating of -4 or 1e6, or the same (user, movie) pair rated twice, silently
skews training and evaluation; a duplicated latest rating even put one pair in both the valid
and the test split. Every MovieLens table goes through :func:`check_ratings` and
:func:`deduplicate_ratings` when it is loaded, and every split refuses tables with repeated
pairs (:func:`check_unique_pairs`), so a pair can never sit in two splits.

Duplicate policy: keep each pair's *latest* rating, by timestamp, then by file order (the later
row wins a timestamp tie); drop the others and warn with their count (:class:`DataWarning`).
All checks are vectorized (one sort of int64 pair keys); only rows that are duplicated are
looked at again.
"""

from __future__ import annotations

import warnings

import numpy as np

from tfrec.data import schema
from tfrec.data._arrays import as_int_ids
from tfrec.data.errors import DataError, DataWarning

Table = dict[str, np.ndarray]


def _codes(ratings: Table, index: str, key: str) -> np.ndarray:
    """Non-negative int64 codes, equal exactly when the ids are equal."""
    if index in ratings:
        return np.asarray(ratings[index], np.int64)
    column = np.asarray(ratings[key])
    numbers = as_int_ids(column)
    if numbers is not None and (numbers.size == 0 or numbers.min() >= 0):
        return numbers
    return np.unique(column, return_inverse=True)[1].reshape(-1).astype(np.int64)


def pair_keys(ratings: Table) -> np.ndarray:
    """One int64 per row, equal exactly when two rows have the same (user, movie) pair.

    Uses ``user_index`` / ``movie_index`` when present, else the ids.
    """
    for names in (("user_index", "user_id"), ("movie_index", "movie_id")):
        if not any(name in ratings for name in names):
            raise ValueError(
                f"The ratings table needs a {' or '.join(names)} column. Received: "
                f"columns={sorted(ratings)}. Fix: pass MovieLens.ratings or a row subset of it."
            )
    users = _codes(ratings, "user_index", "user_id")
    movies = _codes(ratings, "movie_index", "movie_id")
    if users.size == 0:
        return users
    width = int(movies.max()) + 1
    if int(users.max()) >= (np.iinfo(np.int64).max - width) // width:  # would overflow
        users = np.unique(users, return_inverse=True)[1].reshape(-1).astype(np.int64)
        movies = np.unique(movies, return_inverse=True)[1].reshape(-1).astype(np.int64)
        width = int(movies.max()) + 1
    return users * width + movies


def superseded_rows(ratings: Table) -> np.ndarray:
    """Mask of rows whose (user, movie) pair has a later rating (the rows the policy drops)."""
    keys = pair_keys(ratings)
    ordered = np.sort(keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    dropped = np.zeros(keys.size, bool)
    if repeated.size == 0:
        return dropped
    repeated = np.unique(repeated)  # small: one entry per repeated pair
    position = np.minimum(np.searchsorted(repeated, keys), repeated.size - 1)
    rows = np.flatnonzero(repeated[position] == keys)  # only the rows of repeated pairs
    if "timestamp" not in ratings:
        raise ValueError(
            "Deduplicating ratings needs a timestamp column (the latest rating is kept). "
            f"Received: columns={sorted(ratings)}."
        )
    times = np.asarray(ratings["timestamp"])[rows]
    order = rows[np.lexsort((rows, times, keys[rows]))]  # by pair, then time, then file order
    last = np.r_[keys[order][1:] != keys[order][:-1], True]
    dropped[order[~last]] = True
    return dropped


def deduplicate_ratings(ratings: Table, *, where: str = "the ratings", warn: bool = True) -> Table:
    """Keeps each (user, movie) pair's latest rating (timestamp, then file order).

    Returns ``ratings`` itself when no pair repeats, else the kept rows in file order; warns
    (:class:`DataWarning`) with the number of dropped rows and an example pair.
    """
    dropped = superseded_rows(ratings)
    count = int(dropped.sum())
    if count == 0:
        return ratings
    if warn:
        row = int(np.flatnonzero(dropped)[0])
        example = ", ".join(
            f"{name}={str(ratings[name][row])!r}"
            for name in ("user_id", "movie_id")
            if name in ratings
        )
        warnings.warn(
            f"{where}: dropped {count:,} ratings that repeat a (user, movie) pair, keeping each "
            f"pair's latest rating (by timestamp, then file order). Example: {example}. "
            "See 'Duplicates' in tfrec/data/README.md.",
            DataWarning,
            stacklevel=2,
        )
    keep = np.flatnonzero(~dropped)
    return {name: column[keep] for name, column in ratings.items()}


def check_unique_pairs(ratings: Table, protocol: str) -> None:
    """Raises unless every (user, movie) pair occurs once, so no pair can be in two splits."""
    keys = pair_keys(ratings)
    ordered = np.sort(keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size:
        row = int(np.flatnonzero(keys == repeated[0])[0])
        example = {k: str(ratings[k][row]) for k in ("user_id", "movie_id") if k in ratings}
        raise DataError(
            f"{protocol} needs one rating per (user, movie) pair, or the same pair could land in "
            f"two splits. Received: {repeated.size:,} repeated rows, e.g. {example}. Fix: "
            "tfrec.data.deduplicate_ratings(ratings) (keeps each pair's latest rating)."
        )


def check_ratings(ratings: Table, variant: str, where: str) -> None:
    """Raises naming the first row whose ``user_rating`` is off ``variant``'s scale."""
    values = np.asarray(ratings["user_rating"])
    bad = schema.invalid_ratings(values, variant)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        ids = ", ".join(
            f"{name}={str(ratings[name][row])!r}"
            for name in ("user_id", "movie_id")
            if name in ratings
        )
        raise DataError(
            f"{where} row {row} ({ids}): invalid user_rating. Received: "
            f"user_rating={schema.plain_number(values[row])!r} ({int(bad.sum()):,} such rows). Fix: "
            f"{schema.rating_rule(variant)}; repair the source or re-fetch the data."
        )

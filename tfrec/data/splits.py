"""Train / validation / test splits of a ratings table: leave-one-out, chronological, random.

Why this exists: honest evaluation depends on how ratings are split, and each protocol must be
reproducible and fast on tens of millions of rows. Every split here is a row subset of the input
table with all its columns (2-D columns such as history matrices included), in file order.
Time order means (timestamp, file order): ties in timestamp are broken by position in the table.
Every (user, movie) pair must occur once (``tfrec.data.deduplicate_ratings``; MovieLens tables
are deduplicated when loaded), so no pair can be in two splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tfrec.data._arrays import as_int_ids
from tfrec.data.checks import check_unique_pairs

Table = dict[str, np.ndarray]


class Split(NamedTuple):
    """Three row subsets of one ratings table."""

    train: Table
    valid: Table
    test: Table


def take(ratings: Table, rows: np.ndarray) -> Table:
    """Returns the row subset ``rows`` of every column of ``ratings``."""
    return {name: column[rows] for name, column in ratings.items()}


def _num_rows(ratings: Table) -> int:
    lengths = {name: len(column) for name, column in ratings.items()}
    if not lengths:
        raise ValueError("The ratings table has no columns. Received: ratings={}.")
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"Ratings columns must have equal lengths. Received: lengths={lengths}. "
            "Fix: build every column from the same rows."
        )
    return next(iter(lengths.values()))


def require_column(ratings: Table, *names: str) -> np.ndarray:
    """Returns the first of ``names`` present in ``ratings``, or raises naming what is needed."""
    for name in names:
        if name in ratings:
            return ratings[name]
    raise ValueError(
        f"The ratings table needs a {' or '.join(names)} column. Received: "
        f"columns={sorted(ratings)}. Fix: pass MovieLens.ratings or a row subset of it."
    )


def time_order(ratings: Table, per_user: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns row order by (user,) timestamp, file order, and each row's user group id."""
    n = _num_rows(ratings)
    timestamp = require_column(ratings, "timestamp")
    file_order = np.arange(n)
    if not per_user:
        return np.lexsort((file_order, timestamp)), None
    user = as_int_ids(require_column(ratings, "user_index", "user_id"))
    if user is None:  # ids that are not integers: group by their rank among distinct ids
        _, user = np.unique(ratings["user_id"], return_inverse=True)
        user = user.reshape(-1)
    return np.lexsort((file_order, timestamp, user)), user


def rank_in_user(order: np.ndarray, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by ``order`` (grouped by user): position in the group and group size."""
    grouped = user[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, grouped.size])
    size = np.repeat(sizes, sizes)
    rank = np.arange(grouped.size) - np.repeat(starts, sizes)
    return rank, size


def _split(ratings: Table, part: np.ndarray, protocol: str, fix: str) -> Split:
    """Builds the Split from a per-row part id (0 train, 1 valid, 2 test)."""
    check_unique_pairs(ratings, protocol)
    names = Split._fields
    for index, name in enumerate(names):
        if not (part == index).any():
            raise ValueError(
                f"{protocol} produced an empty {name} split. Received: {len(part)} ratings. "
                f"Fix: {fix}"
            )
    return Split(*(take(ratings, np.flatnonzero(part == index)) for index in range(3)))


def leave_one_out(ratings: Table) -> Split:
    """Per user: last rating in time order -> test, second-last -> valid, the rest -> train.

    Users with fewer than 3 ratings keep all of them in train (they could not give a non-empty
    training history otherwise).
    """
    order, user = time_order(ratings, per_user=True)
    rank, size = rank_in_user(order, user)
    from_end = size - 1 - rank
    part = np.zeros(order.size, np.int8)
    part[order] = np.where(size < 3, 0, np.select([from_end == 0, from_end == 1], [2, 1], 0))
    fix = "leave-one-out needs at least one user with 3 or more ratings."
    return _split(ratings, part, "leave_one_out", fix)


def check_ratios(ratios: Sequence[float]) -> np.ndarray:
    """Validates (train, valid, test) ratios: three finite non-negative numbers summing to 1."""
    values = np.asarray(ratios, dtype=np.float64)
    if values.shape != (3,) or not np.isfinite(values).all():
        raise ValueError(
            f"ratios must be three finite numbers (train, valid, test). Received: ratios={ratios}."
        )
    if (values < 0).any():
        raise ValueError(
            f"ratios must be non-negative. Received: ratios={tuple(ratios)}. "
            "Fix: e.g. ratios=(0.8, 0.1, 0.1)."
        )
    if abs(values.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"ratios must sum to 1. Received: ratios={tuple(ratios)} (sum {values.sum():g}). "
            "Fix: e.g. ratios=(0.8, 0.1, 0.1)."
        )
    return values


def _parts(position: np.ndarray, count: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Part id of the row at ``position`` among ``count`` rows (cuts rounded half up)."""
    cut_train = np.floor(count * ratios[0] + 0.5)
    cut_valid = np.floor(count * (ratios[0] + ratios[1]) + 0.5)
    return (position >= cut_train).astype(np.int8) + (position >= cut_valid)


def chronological_split(
    ratings: Table, ratios: Sequence[float] = (0.8, 0.1, 0.1), per_user: bool = False
) -> Split:
    """Splits by time: the earliest ``ratios[0]`` of ratings train, then valid, then test.

    ``per_user=False`` cuts the whole table at global time points; ``per_user=True`` cuts each
    user's own history (so every user with enough ratings appears in every split). Cut sizes
    are ``round_half_up(n * cumulative ratio)``.
    """
    values = check_ratios(ratios)
    order, user = time_order(ratings, per_user)
    if per_user:
        rank, size = rank_in_user(order, user)
    else:
        rank, size = np.arange(order.size), np.full(order.size, order.size)
    part = np.empty(order.size, np.int8)
    part[order] = _parts(rank, size, values)
    fix = "use more ratings or larger ratios for the empty split."
    return _split(ratings, part, "chronological_split", fix)


def random_split(ratings: Table, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Splits rows uniformly at random into ``ratios``; the same ``seed`` gives the same split."""
    values = check_ratios(ratios)
    n = _num_rows(ratings)
    position = np.empty(n, np.int64)
    position[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    part = _parts(position, np.full(n, n), values)
    fix = "use more ratings or larger ratios for the empty split."
    return _split(ratings, part, "random_split", fix)

"""Small vectorized array helpers shared by the data modules (distinct values, id lookup).

Why this exists: MovieLens 20m/25m tables have tens of millions of rows, and ``np.unique``
without ``return_inverse`` is very slow on large integer arrays in numpy 2.4 (measured 14 s
for 10M int64, against 0.2 s for a sort); ids that are decimal strings are also far faster to
look up as integers. These helpers keep those paths sort-based and integer-based.
"""

from __future__ import annotations

import numpy as np


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Returns the sorted distinct values of a 1-D array (sort + neighbour comparison)."""
    ordered = np.sort(np.asarray(values), kind="stable")
    if ordered.size == 0:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def as_int_ids(ids: np.ndarray) -> np.ndarray | None:
    """Returns string ids as int64 when every one is a canonical decimal integer, else None.

    Canonical means digits only, no sign and no leading zero, so the mapping back to text is
    exact. Works on the characters directly ([rows, width] code points, Horner's rule over the
    columns), which is ~20x faster than ``astype(np.int64)`` on a unicode array.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    width = ids.dtype.itemsize // 4
    if ids.dtype.kind != "U" or ids.size == 0 or width == 0 or width > 18:
        return None
    codes = np.ascontiguousarray(ids).reshape(-1).view(np.uint32).reshape(ids.size, width)
    present = codes != 0  # shorter strings are padded with NUL code points on the right
    digits = codes.astype(np.int64) - ord("0")
    is_digit = (digits >= 0) & (digits <= 9)
    if not (is_digit | ~present).all() or not present[:, 0].all():
        return None
    if (present[:, 1:] & ~present[:, :-1]).any():  # a NUL inside a value
        return None
    if width > 1 and ((digits[:, 0] == 0) & present[:, 1]).any():
        return None  # leading zero: "007" would not map back to itself
    value = np.zeros(ids.size, np.int64)
    for column in range(width):  # loop over character positions, vectorized over rows
        value = np.where(present[:, column], value * 10 + digits[:, column], value)
    return value.reshape(ids.shape)


def index_of(ids: np.ndarray, universe: np.ndarray, what: str, where: str) -> np.ndarray:
    """Maps each id to its position in ``universe``; raises naming ids that are missing.

    Why: ratings reference users and movies by id; models need dense int64 indices, and a
    reference to an unknown id must fail loudly instead of silently mapping somewhere.
    """
    ids, universe = np.asarray(ids), np.asarray(universe)
    keys, queries = as_int_ids(universe), None
    if keys is not None:
        queries = as_int_ids(ids)
    if queries is None:
        keys, queries = universe, ids
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    if ordered.size == 0:
        found = np.zeros(ids.shape, bool)
        position = np.zeros(ids.shape, np.int64)
    else:
        position = np.clip(np.searchsorted(ordered, queries), 0, ordered.size - 1)
        found = ordered[position] == queries
    if not found.all():
        missing = unique_sorted(ids[~found])
        more = " ..." if missing.size > 5 else ""
        raise ValueError(
            f"{int((~found).sum())} rows reference {what} values missing from {where}. "
            f"Received: {what}={missing[:5].tolist()}{more}. Fix: use complete, matching "
            "files (or drop those rows)."
        )
    return order[position].astype(np.int64) if ordered.size else position

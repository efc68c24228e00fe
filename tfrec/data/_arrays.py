"""Small vectorized array helpers shared by the data modules (id lookup)."""

from __future__ import annotations

import numpy as np


def index_of(ids: np.ndarray, universe: np.ndarray, what: str, where: str) -> np.ndarray:
    """Maps each id to its position in ``universe``; raises naming ids that are missing.

    Why: ratings reference users and movies by id; models need dense int64 indices, and a
    reference to an unknown id must fail loudly instead of silently mapping somewhere.
    """
    order = np.argsort(universe, kind="stable")
    ordered = universe[order]
    if ordered.size == 0:
        found = np.zeros(np.shape(ids), bool)
        position = np.zeros(np.shape(ids), np.int64)
    else:
        position = np.clip(np.searchsorted(ordered, ids), 0, ordered.size - 1)
        found = ordered[position] == ids
    if not found.all():
        missing = np.unique(np.asarray(ids)[~found])
        more = " ..." if missing.size > 5 else ""
        raise ValueError(
            f"{int((~found).sum())} rows reference {what} values missing from {where}. "
            f"Received: {what}={missing[:5].tolist()}{more}. Fix: use complete, matching "
            "files (or drop those rows)."
        )
    return order[position].astype(np.int64) if ordered.size else position

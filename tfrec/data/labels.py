"""Training labels derived from ratings: implicit (every rating is a positive) or explicit.

Why this exists: the same ratings feed retrieval models (implicit feedback: "the user rated it")
and rating/CTR-style models (explicit: "the user liked it"); both need float32 label vectors that
line up with the ratings rows.
"""

from __future__ import annotations

import numpy as np


def _ratings_column(ratings: dict[str, np.ndarray]) -> np.ndarray:
    if "user_rating" not in ratings:
        raise ValueError(
            f"The ratings table needs a 'user_rating' column. Received: columns={sorted(ratings)}."
            " Fix: pass MovieLens.ratings or a row subset of it."
        )
    return np.asarray(ratings["user_rating"])


def implicit_labels(ratings: dict[str, np.ndarray]) -> np.ndarray:
    """Returns float32 ones, one per rating: each observed rating is a positive interaction."""
    return np.ones(len(_ratings_column(ratings)), np.float32)


def explicit_labels(ratings: dict[str, np.ndarray], threshold: float = 4.0) -> np.ndarray:
    """Returns float32 1.0 where ``user_rating >= threshold`` ("liked"), else 0.0."""
    if not np.isfinite(threshold):
        raise ValueError(
            f"threshold must be a finite rating. Received: threshold={threshold!r}. "
            "Fix: e.g. threshold=4.0."
        )
    return (_ratings_column(ratings) >= threshold).astype(np.float32)

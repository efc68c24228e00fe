"""Argument checks shared by the tfrec layers' constructors."""

from __future__ import annotations

import numpy as np


def is_positive_int(value) -> bool:
    """True for a Python/numpy integer > 0 (bools excluded), the type of every size argument."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0

"""Lazy imports of the optional statistics stack (scipy, statsmodels).

`tfrec.experiments` sits beside the production loop, so ``import tfrec`` and even
``import tfrec.experiments`` must not pull in scipy or statsmodels (which drags pandas in):
each statistical function asks for its library here, when it first runs, and a missing
library is reported with the extra that installs it.
"""

from __future__ import annotations

import importlib

_EXTRA = "pip install 'tfrec[experiments]'"


def require(module: str):
    """Imports and returns `module` (e.g. ``"scipy.stats"``), naming the extra if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(
            f"tfrec.experiments needs {package} for this function, and it is not installed "
            f"(import of {module!r} failed: {error}). Fix: {_EXTRA}"
        ) from error


def scipy_stats():
    """``scipy.stats`` (distributions, chi-square and Welch tests)."""
    return require("scipy.stats")


def sm_power():
    """``statsmodels.stats.power`` (NormalIndPower, TTestIndPower)."""
    return require("statsmodels.stats.power")


def sm_proportion():
    """``statsmodels.stats.proportion`` (effect sizes and sample sizes for proportions)."""
    return require("statsmodels.stats.proportion")

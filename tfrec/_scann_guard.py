"""Keeps an installed but unloadable ScaNN from breaking TensorFlow Recommenders' import.

TFRS 0.7.7 probes for ScaNN with ``from scann import scann_ops`` and catches only
``ImportError``. The ``scann`` 1.4.2 wheel's package ``__init__`` loads TensorFlow custom ops
built for TensorFlow 2.20; next to 2.21 that raises ``tf.errors.NotFoundError`` (an undefined
absl symbol), so merely installing ``scann`` (``tfrec[scann]``) would make ``import
tensorflow_recommenders``, and with it every tfrec model, fail. tfrec therefore tries the
import once, on ``import tfrec``; if ScaNN's TF ops fail to load, ``scann`` is marked
unimportable (``sys.modules["scann"] = None``), so TFRS sees an ``ImportError`` and runs
without its ScaNN layer exactly as if ScaNN were absent. `tfrec.retrieval.ScannIndex` needs
only ScaNN's numpy API, which it loads by itself.
"""

from __future__ import annotations

import importlib.util
import sys

SCANN_TF_OPS_ERROR: str | None = None
"""Why ScaNN's TensorFlow ops failed to load (None if they loaded or ScaNN is absent)."""


def block_unloadable_scann() -> None:
    """Turns a failing ``import scann`` into an ``ImportError`` for everyone after tfrec."""
    global SCANN_TF_OPS_ERROR
    if "scann" in sys.modules or importlib.util.find_spec("scann") is None:
        return
    import tensorflow as tf

    try:
        import scann  # noqa: F401
    except ImportError:
        return  # TFRS already treats this as "no ScaNN"
    except tf.errors.OpError as error:  # the op library does not load in this TensorFlow
        SCANN_TF_OPS_ERROR = str(error).strip()
        sys.modules["scann"] = None

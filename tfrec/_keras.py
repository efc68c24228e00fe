"""Selects Keras 2 (``tf_keras``) for TensorFlow before anything touches ``tf.keras``.

TensorFlow Recommenders only works with Keras 2. TensorFlow 2.16+ resolves ``tf.keras``
to Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set *before* ``tf.keras`` is first used,
so tfrec sets it on import and then checks that it took effect.
"""

from __future__ import annotations

import os

_ENV = "TF_USE_LEGACY_KERAS"

_TOO_LATE = (
    "tfrec needs Keras 2 (tf-keras) because TensorFlow Recommenders refuses Keras 3, but "
    "TensorFlow's Keras was already resolved to Keras 3 (tf.keras.layers.Dense comes from "
    "'{module}'). Received: {env}={value!r}. Fix: import tfrec before anything uses "
    "tf.keras, or start Python with {env}=1 in the environment (e.g. "
    "`export {env}=1`)."
)


def select_keras2() -> None:
    """Makes ``tf.keras`` resolve to Keras 2, or raises ``ImportError`` if it is too late."""
    previous = os.environ.get(_ENV)
    os.environ[_ENV] = "1"
    import tensorflow as tf

    module = tf.keras.layers.Dense.__module__
    if not module.startswith("tf_keras"):
        raise ImportError(_TOO_LATE.format(module=module, env=_ENV, value=previous))

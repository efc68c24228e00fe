"""tfrec must select Keras 2, and fail loudly when tf.keras already resolved to Keras 3."""

import os
import subprocess
import sys


def _run(code: str, env_value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if env_value is not None:
        env["TF_USE_LEGACY_KERAS"] = env_value
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_import_selects_keras2_even_without_env():
    out = _run("import tfrec, tensorflow as tf; print(tf.keras.layers.Dense.__module__)", None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("tf_keras")


def test_import_after_keras3_resolved_fails_with_fix():
    code = "import tensorflow as tf; tf.keras.layers.Dense; import tfrec"
    out = _run(code, None)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "TF_USE_LEGACY_KERAS=1" in out.stderr
    assert "import tfrec before" in out.stderr

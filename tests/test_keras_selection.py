"""tfrec must select Keras 2, and fail loudly when tf.keras already resolved to Keras 3."""

import os
import subprocess
import sys

import pytest


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


FAKE_SCANN = """
# Mimics the ScaNN wheel: its __init__ loads TensorFlow custom ops built for another release
# whenever TensorFlow imports, which fails; without TensorFlow it offers the numpy API only.
try:
    import tensorflow
except ModuleNotFoundError:
    NUMPY_ONLY = True
else:
    raise tensorflow.errors.NotFoundError(None, None, "scann_ops.so: undefined symbol")
"""


def _with_scann(tmp_path, init: str, code: str) -> subprocess.CompletedProcess:
    package = tmp_path / "site" / "scann"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(init)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    paths = [str(package.parent), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )


def test_fake_scann_breaks_tensorflow_recommenders_without_tfrec(tmp_path):
    # The control: this is the failure `tfrec._scann_guard` exists for.
    out = _with_scann(tmp_path, FAKE_SCANN, "import tensorflow_recommenders")
    assert out.returncode != 0 and "undefined symbol" in out.stderr


def test_guard_blocks_scann_so_tensorflow_recommenders_imports(tmp_path):
    code = (
        "import tfrec, sys, tensorflow as tf, tensorflow_recommenders as tfrs\n"
        "from tfrec import _scann_guard\n"
        "print(sys.modules['scann'], tfrs.layers.factorized_top_k._HAVE_SCANN)\n"
        "print('undefined symbol' in _scann_guard.SCANN_TF_OPS_ERROR, int(tf.constant(2) + 1))\n"
        "try:\n    import scann\nexcept ImportError:\n    print('ImportError')\n"
    )
    out = _with_scann(tmp_path, FAKE_SCANN, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-3:] == ["None False", "True 3", "ImportError"]


@pytest.mark.parametrize("broken", [False, True])
def test_guard_in_process(tmp_path, monkeypatch, broken):
    from tfrec import _scann_guard

    package = tmp_path / "scann"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('broken')\n" if broken else FAKE_SCANN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "scann", raising=False)
    monkeypatch.setattr(_scann_guard, "SCANN_TF_OPS_ERROR", None)
    _scann_guard.block_unloadable_scann()
    if broken:  # a plain ImportError is TFRS's own "no ScaNN": nothing to block
        assert "scann" not in sys.modules and _scann_guard.SCANN_TF_OPS_ERROR is None
    else:
        assert (
            sys.modules["scann"] is None and "undefined symbol" in _scann_guard.SCANN_TF_OPS_ERROR
        )
        monkeypatch.delitem(sys.modules, "scann")

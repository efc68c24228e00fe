"""The export stands alone: plain TensorFlow without tfrec loads it, saved_model_cli lists it.

Both checks run in one subprocess that never imports tfrec: it loads the export with
`tf.saved_model.load` and calls the signatures, prints the result, then runs the
``.venv/bin/saved_model_cli`` entry script (``show --all``) in the same interpreter, which
saves a second TensorFlow import on a busy machine.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

_LOAD_WITHOUT_TFREC = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    sigs = loaded.signatures
    score = sigs["serving_default"](
        user_id=tf.constant(["196", "no-such-user"]), movie_id=tf.constant(["242", "1"])
    )["score"]
    top = sigs["recommend"](user_id=tf.constant(["196"]), k=tf.constant(4))
    print(json.dumps({
        "signatures": sorted(sigs),
        "score": score.numpy().tolist(),
        "movie_ids": [[v.decode() for v in row] for row in top["movie_ids"].numpy()],
        "tfrec_imported": sorted(m for m in sys.modules if m.split(".")[0] == "tfrec"),
    }))
    print("END-OF-LOAD-CHECK", flush=True)

    import runpy
    sys.argv = [sys.argv[2], "show", "--all", "--dir", sys.argv[1]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit:
        if exit.code:
            raise
    """
)


@pytest.fixture(scope="module")
def standalone(exports, tmp_path_factory):
    """``(load-check JSON, saved_model_cli output)`` from a subprocess without tfrec."""
    cwd = tmp_path_factory.mktemp("standalone")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    script = cwd / "load.py"
    script.write_text(_LOAD_WITHOUT_TFREC)
    cli = Path(sys.executable).with_name("saved_model_cli")
    done = subprocess.run(
        [sys.executable, str(script), str(exports.popular), str(cli)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    load, cli_output = done.stdout.split("END-OF-LOAD-CHECK")
    return json.loads(load.strip().splitlines()[-1]), cli_output


def test_loads_with_plain_tensorflow_without_tfrec(standalone, served):
    result = standalone[0]
    assert result["tfrec_imported"] == []
    assert {"serving_default", "score_features", "recommend"} <= set(result["signatures"])
    expected = served.signatures["serving_default"](
        user_id=tf.constant(["196", "no-such-user"]), movie_id=tf.constant(["242", "1"])
    )["score"].numpy()
    np.testing.assert_allclose(result["score"], expected, rtol=1e-6)
    top = served.rest({"signature_name": "recommend", "inputs": {"user_id": ["196"], "k": 4}})
    assert result["movie_ids"] == top["outputs"]["movie_ids"]


def test_saved_model_cli_lists_named_signatures(standalone):
    text = standalone[1]
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)Method name is: (?:\S*)", text, re.S))
    assert {"serving_default", "score_features", "recommend"} <= set(blocks)

    def tensors(block, kind):
        found = re.findall(
            rf"{kind}\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\(.*?\))", block
        )
        return {name: (dtype, shape) for name, dtype, shape in found}

    assert tensors(blocks["serving_default"], "inputs") == {
        "movie_id": ("DT_STRING", "(-1)"),
        "user_id": ("DT_STRING", "(-1)"),
    }
    assert tensors(blocks["serving_default"], "outputs") == {"score": ("DT_FLOAT", "(-1)")}
    assert tensors(blocks["recommend"], "inputs") == {
        "k": ("DT_INT32", "()"),
        "user_id": ("DT_STRING", "(-1)"),
    }
    assert tensors(blocks["recommend"], "outputs") == {
        "movie_ids": ("DT_STRING", "(-1, -1)"),
        "scores": ("DT_FLOAT", "(-1, -1)"),
        "titles": ("DT_STRING", "(-1, -1)"),
    }
    features = tensors(blocks["score_features"], "inputs")
    assert features["recent_movie_ids"] == ("DT_STRING", "(-1, -1)")
    assert features["movie_genres"] == ("DT_INT64", "(-1, -1)")
    assert "output_1" not in text and "input_1" not in text

"""Export benchmark: seconds to write each registered model's SavedModel, and to load and first
call it in a process that never imports tfrec (what TF Serving and the test suite pay).

Exists because export time is paid by every `make run`, every retraining cycle and the test
suite (which exports all twelve models), and because `tf.saved_model.save` can silently trace
the whole model a second time (`tfrec._signatures`). Each model is built with its registry
defaults on a small generated MovieLens, fit for one epoch, then exported held out
(``as_of="test"``, no warmup requests) and timed; a child process then loads every export
with plain `tf.saved_model.load` and calls ``recommend`` and ``serving_default`` once.

Usage:
  python benchmarks/bench_export.py                  # every registered model
  python benchmarks/bench_export.py --models deepfm,sasrec
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

from _bench_utils import emit, machine_info, table

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import available_models, build_model
from tfrec.serving import export_model
from tfrec.training import fit

_LOAD = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        start = time.perf_counter()
        signatures = tf.saved_model.load(path).signatures
        loaded = time.perf_counter()
        signatures["recommend"](user_id=tf.constant(["1", "2"]), k=tf.constant(10))
        signatures["serving_default"](user_id=tf.constant(["1"]), movie_id=tf.constant(["1"]))
        out[name] = [loaded - start, time.perf_counter() - loaded]
    assert not any(m.split(".")[0] == "tfrec" for m in sys.modules), "tfrec was imported"
    print("RESULT" + json.dumps(out))
    """
)


def load_times(paths: dict) -> dict:
    """{model: [load s, first calls s]} measured in a child process without tfrec."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, json.dumps(paths)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"loading the exports failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(available_models()))
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--movies", type=int, default=70)
    args = parser.parse_args(argv)
    print(json.dumps(machine_info()))
    ml = synthetic_movielens(
        num_users=args.users, num_movies=args.movies, ratings_per_user=12, seed=1
    )
    data = SplitData.from_movielens(ml)
    rows, paths = {}, {}
    with tempfile.TemporaryDirectory() as base:
        for name in args.models.split(","):
            model = build_model(name, data)
            fit(model, data, epochs=1, batch_size=256, num_negatives=2, verbose=0)
            start = time.perf_counter()
            path = export_model(model, data, as_of="test", base_dir=base, name=name, warmup=False)
            rows[name] = {"export s": time.perf_counter() - start}
            paths[name] = str(path)
        for name, (load, call) in load_times(paths).items():
            rows[name].update({"load s": load, "first calls s": call})
    rows["total"] = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
    print(table(rows, digits=2))
    emit("export", rows)


if __name__ == "__main__":
    main()

"""Run one worker or parameter-server task of a `parameter_server` cluster (from TF_CONFIG).

Why this exists: under `tf.distribute.ParameterServerStrategy` only the chief runs tfrec's
training code (``tfrec train --strategy parameter_server``); every ``worker`` and ``ps`` task
just serves TensorFlow's gRPC runtime and executes what the chief sends. This is that server,
so each machine of the cluster runs one short command::

    TF_CONFIG='{"cluster": {...}, "task": {"type": "ps", "index": 0}}' \
        python -m tfrec.cluster

It blocks until killed. A restarted worker rejoins on its own (the chief re-creates its
datasets and reschedules its steps); a restarted parameter server needs the chief restarted too
(its backup restores the variables). Multi-worker mirrored training needs no servers: every
worker runs ``tfrec train --strategy multi_worker`` itself.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before tf.keras is touched)
import argparse
import json
import os
import sys

import tensorflow as tf

ROLES = ("worker", "ps")


def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` (``{}`` when unset), with a clear error when malformed."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({err}). Received: TF_CONFIG={raw[:200]!r}. Fix: e.g. "
            '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", '
            '"index": 0}}'
        ) from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(
            "TF_CONFIG needs a 'cluster' (job name -> list of host:port) and a 'task' "
            f"({{'type': ..., 'index': ...}}). Received: TF_CONFIG={raw[:200]!r}"
        )
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(
            f"TF_CONFIG's task {task} is not in its cluster {sorted(cluster)}. Fix: 'type' must "
            "name a job of the cluster and 'index' one of its addresses."
        )
    return config


def server(config: dict | None = None, threads: int | None = None) -> tf.distribute.Server:
    """A started `tf.distribute.Server` for this process's task in TF_CONFIG (`config`)."""
    config = config or tf_config()
    if not config:
        raise ValueError(
            "TF_CONFIG is not set. Fix: export TF_CONFIG with the cluster and this task, e.g. "
            '{"cluster": {"chief": [...], "worker": [...], "ps": [...]}, "task": {"type": '
            '"ps", "index": 0}} (README: Training on a cluster).'
        )
    task = config["task"]
    if task["type"] not in ROLES:
        raise ValueError(
            f"This command runs the {' and '.join(ROLES)} tasks. Received: task {task}. Fix: "
            "the chief runs `tfrec train --strategy parameter_server`."
        )
    proto = tf.compat.v1.ConfigProto()
    # A worker runs dataset functions and training steps at once: a few inter-op threads
    # even on a small machine keep one from waiting on the other.
    proto.inter_op_parallelism_threads = threads or max(4, os.cpu_count() or 1)
    return tf.distribute.Server(
        tf.train.ClusterSpec(config["cluster"]),
        job_name=task["type"],
        task_index=task["index"],
        protocol=config.get("rpc_layer", "grpc"),
        config=proto,
        start=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tfrec.cluster",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--threads", type=int, help="inter-op threads (default: max(4, cores))")
    args = parser.parse_args(argv)
    try:
        running = server(threads=args.threads)
    except ValueError as err:
        print(f"tfrec cluster: error: {err}", file=sys.stderr)
        return 2
    task = tf_config()["task"]
    print(f"tfrec cluster: {task['type']} {task['index']} serving at {running.target}", flush=True)
    running.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`tf.distribute` strategies by name, the cluster from ``TF_CONFIG``, and undistributed copies.

Why this exists: the same tfrec model must train on one CPU, on several GPUs of one machine, on
several machines in lock step, and against parameter servers that hold tables no single machine
could, with no cluster code of tfrec's own. TensorFlow's strategies do the work; this module
names them for ``fit(..., strategy=...)`` and ``tfrec train --strategy``, reads the cluster the
standard way (the ``TF_CONFIG`` environment variable), says which process writes files (the
chief), and turns a model trained under a strategy (mirrored or sharded variables) back into an
ordinary one for export and run directories.

* ``default``: no distribution (one device).
* ``mirrored``: `tf.distribute.MirroredStrategy`, one replica per local GPU (or the CPU).
* ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`: every worker in ``TF_CONFIG``
  runs the same command; gradients are all-reduced every step.
* ``parameter_server``: `tf.distribute.ParameterServerStrategy`: variables live on the ``ps``
  tasks, embedding tables (any variable over `min_shard_bytes`) split across them along rows
  (`MinSizePartitioner`); the ``chief`` coordinates, ``worker`` and ``ps`` tasks only run a
  server (``python -m tfrec.cluster``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.cluster import tf_config

STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server")
"""Names `strategy_from_name` (and ``tfrec train --strategy``) accepts."""

MIN_SHARD_BYTES = 256 << 10
"""Default smallest shard of a variable split across parameter servers (256 KiB)."""


def _check_name(name) -> None:
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy. Received: strategy={name!r}. Fix: use one of "
            f"{', '.join(STRATEGIES)}."
        )


def strategy_from_name(name: str, min_shard_bytes: int = MIN_SHARD_BYTES):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`), cluster from TF_CONFIG.

    ``multi_worker`` without TF_CONFIG trains as a cluster of one. ``parameter_server`` needs a
    TF_CONFIG with ``ps`` and ``worker`` jobs and must run on the ``chief`` (the coordinator);
    variables of at least `min_shard_bytes` are split into shards of at least that size, at most
    one per parameter server.
    """
    _check_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    config = tf_config()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    cluster = config.get("cluster", {})
    if not cluster.get("ps") or not cluster.get("worker"):
        raise ValueError(
            "strategy='parameter_server' needs a TF_CONFIG whose cluster has 'ps' and 'worker' "
            f"jobs (and a 'chief' running this command). Received: jobs {sorted(cluster)}. Fix: "
            "see README 'Training on a cluster'."
        )
    if config["task"]["type"] != "chief":
        raise ValueError(
            "With strategy='parameter_server' only the chief runs `tfrec train`; workers and "
            "parameter servers run `python -m tfrec.cluster`. Received: task "
            f"{config['task']}."
        )
    if (
        isinstance(min_shard_bytes, bool)
        or not isinstance(min_shard_bytes, int)
        or (min_shard_bytes < 1)
    ):
        raise ValueError(f"min_shard_bytes must be an integer >= 1. Received: {min_shard_bytes!r}")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=len(cluster["ps"])
    )
    return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def resolve_strategy(strategy):
    """A strategy from a name, an instance, or None (the strategy in scope, else default)."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if isinstance(strategy, str):
        return strategy_from_name(strategy)
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(
            "`strategy` must be a tf.distribute.Strategy or one of "
            f"{', '.join(STRATEGIES)}. Received: strategy={type(strategy).__name__}"
        )
    return strategy


def is_parameter_server(strategy) -> bool:
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def is_chief(strategy=None) -> bool:
    """Whether this process writes checkpoints, run directories and exports.

    One process per cluster does: the ``chief`` task if there is one, else worker 0, else the
    only process (no TF_CONFIG). Under ``parameter_server`` only the chief runs tfrec at all.
    """
    if strategy is not None and not is_parameter_server(strategy):
        return bool(strategy.extended.should_checkpoint)
    config = tf_config()
    if not config:
        return True
    task, cluster = config["task"], config["cluster"]
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and task["index"] == 0 and "chief" not in cluster


def num_workers(strategy) -> int:
    """Processes that read input: the cluster's workers (and chief), 1 without a cluster."""
    cluster = tf_config().get("cluster", {})
    if is_parameter_server(strategy):
        return len(cluster["worker"])
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and cluster:
        return len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return 1


def _regroup(arrays: list, shapes: list) -> list:
    """Joins consecutive row shards of `arrays` into arrays of `shapes` (in order)."""
    out, position = [], 0
    for shape in shapes:
        parts, rows = [], 0
        while rows < (shape[0] if shape else 1):
            if position >= len(arrays):
                raise ValueError(f"The weights end before a variable of shape {shape} is complete.")
            part = arrays[position]
            position += 1
            parts.append(part)
            rows += part.shape[0] if part.ndim else 1
        value = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"Shards of shape {[p.shape for p in parts]} do not make {shape}.")
        out.append(value)
    if position != len(arrays):
        raise ValueError(f"{len(arrays) - position} weight arrays are left over.")
    return out


def ordinary_copy(model, features):
    """`model` itself, or, if it was built under a strategy, the same model rebuilt outside any
    strategy with its weights: ordinary (unmirrored, unsharded) variables, for export.

    `features` is one batch the model accepts (it builds the copy's weights). Variables split
    across parameter servers come back whole (shards joined along rows). Under
    ``multi_worker`` every worker must call this (reading some variables is collective).
    """
    if model.distribute_strategy is tf.distribute.get_strategy():
        return model
    if tf.distribute.has_strategy():
        raise ValueError(
            "ordinary_copy makes ordinary variables, so it must run outside any "
            "strategy.scope(). Fix: call it after the `with strategy.scope():` block."
        )
    weights = model.get_weights()
    config = tf.keras.layers.serialize(model)
    for key in ("compile_config", "build_config"):
        config.pop(key, None)
    copy = tf.keras.layers.deserialize(config)
    copy(features, training=False)
    copy.set_weights(_regroup(weights, [tuple(w.shape) for w in copy.weights]))
    return copy

"""`fit_records`: train on labelled rows streamed from sharded TFRecords, under any strategy.

Why this exists: `fit` trains on a `SplitData` held in memory (negatives drawn in-graph); data
written by `tfrec.data.scale` is too large for that and already carries labelled rows, split
into files. Those files are the natural unit to share out: under ``multi_worker`` every worker
reads its own files (``shard`` by file, from the strategy's input context), so no row is read
twice and the global batch is the workers' batches together; under ``parameter_server`` each
worker streams all files from its own offset (clock-salted, since every worker runs the same
dataset function). Both go through Keras' `DatasetCreator`, which keeps one dataset per
worker and prefetches to the replicas' devices.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.data import scale
from tfrec.optimizers import get_optimizer
from tfrec.training.distribute import is_chief, is_parameter_server, num_workers
from tfrec.training.fit import _built, _strategy_of
from tfrec.training.resume import TrainingBackup, check_save_freq, fingerprint


def records_dataset_fn(directory, batch_size: int, rename: dict, seed: int = 0, salted=False):
    """The `DatasetCreator` function: endless per-replica batches of this input pipeline's
    files, shuffled by `seed`. With `salted` (parameter-server workers, which all run the same
    traced function) each pipeline starts the shuffled stream at its own offset, drawn from the
    clock when the worker builds it, so workers do not step through the same batches."""

    def dataset_fn(context: tf.distribute.InputContext):
        shard = None
        if context.num_input_pipelines > 1:
            shard = (context.num_input_pipelines, context.input_pipeline_id)
        per_replica = context.get_per_replica_batch_size(batch_size)
        ds = scale.read_dataset(
            directory, per_replica, shuffle=True, seed=seed, rename=rename, shard=shard
        ).repeat()
        if salted:
            batches = max(1, scale.load_schema(directory)["rows"] // per_replica)
            salt = tf.cast(tf.timestamp() * 1e6, tf.int64)
            ds = ds.skip(salt % batches)
        return ds

    return dataset_fn


def fit_records(model, directory, rename: dict, strategy=None, epochs=1, steps_per_epoch=None,
                batch_size=4096, learning_rate=1e-3, optimizer="lazy_adam", seed=0,
                callbacks=(), verbose="auto", backup_dir=None, save_freq="epoch"):  # fmt: skip
    """Compiles and fits a pointwise model on a `tfrec.data.scale` directory; returns History.

    `model` is a model or a builder called under the strategy's scope (as for
    `tfrec.training.fit`); `rename` maps columns to its inputs (`tfrec.features.scale_towers`).
    ``batch_size`` is per replica; an epoch is `steps_per_epoch` global batches (default: one
    pass over the rows). With `backup_dir` the run resumes after a crash (at epoch
    granularity for the data: files are streamed, so a resumed epoch reads fresh batches).
    """
    check_save_freq(save_freq)
    strategy = _strategy_of(model, strategy)
    tf.keras.utils.set_random_seed(seed)
    schema = scale.load_schema(directory)
    model = _built(model, strategy)
    with strategy.scope():
        model(next(iter(scale.read_dataset(directory, 2, rename=rename))), training=False)
        model.compile(optimizer=get_optimizer(optimizer, learning_rate))
    global_batch = batch_size * strategy.num_replicas_in_sync
    if steps_per_epoch is None:
        steps_per_epoch = max(1, schema["rows"] // global_batch)
    if not is_parameter_server(strategy) and num_workers(strategy) > schema.get("shards", 1):
        raise ValueError(
            f"{num_workers(strategy)} workers share {schema.get('shards', 1)} files of "
            f"{directory}. Fix: write at least one shard per worker (--shards)."
        )
    creator = tf.keras.utils.experimental.DatasetCreator(
        records_dataset_fn(directory, global_batch, rename, seed, is_parameter_server(strategy)),
        tf.distribute.InputOptions(experimental_fetch_to_device=True),
    )
    all_callbacks = list(callbacks)
    if backup_dir is not None:
        settings = dict(batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                        optimizer=str(optimizer), directory=str(directory))  # fmt: skip
        run_id = fingerprint(model, settings, steps_per_epoch)
        all_callbacks.append(TrainingBackup(backup_dir, steps_per_epoch, run_id, save_freq,
                                            chief=is_chief(strategy)))  # fmt: skip
    return model.fit(
        creator,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=all_callbacks,
        verbose=verbose,
    )

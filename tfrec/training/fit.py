"""`fit`: compile and train any tfrec model on a split, early-stopped on a ranking metric.

Why this exists: whatever the model, training is the same loop. The model's task picks its
batches (`tfrec.training.pipelines`), negatives are re-drawn every epoch inside tf.data, and
after every epoch `RankingEvaluation` adds validation ranking metrics (``val_full_ndcg@10``,
``val_sampled_hr@10``, ...) to the logs, because the loss on sampled negatives tracks ranking
quality poorly; early stopping watches the metric the model will be judged on and restores the
best epoch. Settings and their defaults live in `tfrec.models.TRAIN_DEFAULTS`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.data.pipelines import epoch_seed, grouped_batch_rows
from tfrec.data.splitdata import SplitData
from tfrec.evaluation.protocols import evaluate
from tfrec.evaluation.scoring import CatalogueScorer
from tfrec.features.inputs import ModelInputs
from tfrec.models.registry import TRAIN_DEFAULTS, check_settings, train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.training.distribute import (
    is_chief,
    is_parameter_server,
    num_workers,
    resolve_strategy,
)
from tfrec.training.pipelines import (
    grouped_by_positive,
    prepare,
    steps_per_epoch,
    training_dataset,
    training_inputs,
)
from tfrec.training.resume import (
    ResumableEarlyStopping,
    TrainingBackup,
    check_save_freq,
    fingerprint,
    finished,
    resume_point,
)


class RankingEvaluation(tf.keras.callbacks.Callback):
    """Adds leave-one-out validation metrics (e.g. ``val_full_ndcg@10``) to each epoch's logs.

    Args:
      data: The `SplitData` whose "valid" split is ranked.
      protocol: "full" or "sampled" (99 uniform negatives).
      ks: Cut-offs.
      every: Evaluate every N epochs.
    """

    def __init__(self, data: SplitData, protocol: str = "full", ks=(10,), every: int = 1):
        super().__init__()
        if protocol not in ("full", "sampled"):
            raise ValueError(f"`protocol` must be 'full' or 'sampled'. Received: {protocol!r}")
        self.data, self.protocol, self.ks, self.every = data, protocol, tuple(ks), int(every)
        self._scorer = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        if self._scorer is None:  # inputs once per fit; only the candidates change per epoch
            inputs = ModelInputs.build(self.model, self.data, "valid")
            self._scorer = CatalogueScorer(self.model, inputs)
        else:
            self._scorer.refresh()
        users, targets = self.data.targets("valid")
        metrics = evaluate(
            self._scorer,
            users,
            targets,
            self.data.num_items,
            self.data.seen("valid"),
            ks=self.ks,
            protocols=(self.protocol,),
        )
        for name, value in metrics.items():
            if isinstance(value, float | int | np.floating):
                logs[f"val_{name}"] = float(value)


def _protocol(monitor: str) -> str:
    for protocol in ("full", "sampled"):
        if monitor.startswith(f"val_{protocol}_"):
            return protocol
    raise ValueError(
        "`monitor` must be a validation ranking metric such as 'val_full_ndcg@10' or "
        f"'val_sampled_hr@10'. Received: monitor={monitor!r}"
    )


def _seed(settings: dict) -> int:
    return settings.get("seed", TRAIN_DEFAULTS["seed"])


CALLS_PER_EPOCH = 32
"""Multi-step calls only when an epoch makes at least this many of them (else one step per call).
Why: tracing the N-step loop costs seconds more than a one-step function (about 3 s on the
2-core box for `make run`'s model, every `fit` call), while each step run inside it saves only
the ~1 ms of Python a step costs; a fit of a few steps per epoch (tests, notebooks' small runs)
never earns that back, an ml-100k epoch of 430 steps does."""


def _steps_per_execution(cfg: dict, save_freq, steps_per_epoch: int) -> int:
    """Training steps per call into TensorFlow: the setting, but 1 when a backup is due every
    `save_freq` steps (step-level callbacks must see each step) or when an epoch is too short
    for `CALLS_PER_EPOCH` calls of that many steps."""
    steps = cfg["steps_per_execution"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(
            "`steps_per_execution` must be an integer >= 1. "
            f"Received: steps_per_execution={steps!r}"
        )
    if save_freq != "epoch" or steps_per_epoch < CALLS_PER_EPOCH * steps:
        return 1
    return steps


def _strategy_of(model, strategy):
    if strategy is not None:
        return resolve_strategy(strategy)
    if isinstance(model, tf.keras.Model):
        return model.distribute_strategy
    return tf.distribute.get_strategy()


def _built(model_or_builder, strategy):
    """The model, checked (outside any scope) to belong to `strategy`, or a builder's model,
    built under `strategy`'s scope."""
    if isinstance(model_or_builder, tf.keras.Model):
        if tf.distribute.has_strategy() or model_or_builder.distribute_strategy is not strategy:
            raise ValueError(
                "The model was created outside the strategy's scope, so its variables are not "
                f"distributed. Received: strategy={type(strategy).__name__}. Fix: build it "
                "inside `with strategy.scope():`, or pass a builder: fit(lambda: "
                "build_model(name, data), data, strategy=...)."
            )
        return model_or_builder
    if not callable(model_or_builder):
        raise TypeError(
            "`model` must be a tfrec model or a function that builds one (called under the "
            f"strategy's scope). Received: model={type(model_or_builder).__name__}"
        )
    with strategy.scope():
        return model_or_builder()


def _describe(strategy, model) -> str:
    """One line on how training is distributed (printed by fit)."""
    sharded = {}
    for variable in model.variables:
        if "/part_" in variable.name:
            base = variable.name.split("/part_")[0]
            sharded.setdefault(base, []).append(tuple(variable.shape))
    line = (
        f"strategy {type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) in "
        f"sync, {num_workers(strategy)} worker(s)"
    )
    if is_parameter_server(strategy):
        parts = "; ".join(f"{name} -> {len(s)} shards {s}" for name, s in sorted(sharded.items()))
        line += f"; variables split across parameter servers: {parts or 'none'}"
    return line


def fit(model, data: SplitData, callbacks=(), verbose="auto", log_dir=None, checkpoint_dir=None,
        strategy=None, backup_dir=None, save_freq="epoch", **settings):  # fmt: skip
    """Compiles and fits a model on `data`'s train split; returns the Keras History.

    `model` is a built tfrec model, or a function that builds one (``lambda: build_model(name,
    data)``), called under the strategy's scope: with a `strategy` other than the default one
    the model's variables must be created in that scope (the trained model is then
    ``history.model``). `strategy` is a `tf.distribute.Strategy` or a name in
    `tfrec.training.distribute.STRATEGIES` (cluster from TF_CONFIG); by default, the model's.
    ``batch_size`` is per replica: the global batch is ``batch_size`` times the replicas in
    sync (multi-worker: each worker reads its share of every global batch).

    Settings (defaults in `tfrec.models.TRAIN_DEFAULTS`, with the model's registered overrides,
    see `tfrec.models.train_defaults`; an unknown one is an error):
    ``epochs``, ``batch_size``, ``learning_rate``, ``optimizer`` ("adam", "lazy_adam" for
    embedding tables of 10^5+ ids, "adagrad", or a tf.keras optimizer), ``num_negatives`` and
    ``negative_distribution`` (for pointwise tasks and mixed negatives), ``patience`` and
    ``monitor`` (early stopping on a validation ranking metric, best epoch restored), ``seed``,
    ``steps_per_execution`` (steps per call into TensorFlow; 1 with a step-level `save_freq` or
    an epoch shorter than `CALLS_PER_EPOCH` such calls).
    TensorBoard and checkpoint callbacks are added when `log_dir` / `checkpoint_dir` are given.

    With `backup_dir`, the run is resumable (`tfrec.training.resume`): the model, optimizer,
    position, early-stopping state and history are backed up at every epoch end (and every
    `save_freq` steps), a rerun with the same arguments continues from the last backup and
    ends as the uninterrupted run would, and the backup is deleted when fit completes. The
    returned history then covers every epoch, before and after the interruption.
    """
    check_settings(settings, TRAIN_DEFAULTS, "training setting(s)")
    check_save_freq(save_freq)
    strategy = _strategy_of(model, strategy)
    tf.keras.utils.set_random_seed(_seed(settings))
    model = _built(model, strategy)
    with strategy.scope():
        cfg = {**train_defaults(getattr(model, "registry_name", None)), **settings}
        epochs = cfg["epochs"]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be an integer >= 1. Received: epochs={epochs!r}")
        monitor = cfg["monitor"]
        protocol = _protocol(monitor)
        inputs = training_inputs(model, data)
        prepare(model, data, inputs)
        # One (user, item) pair builds every layer before training (which goes through
        # compute_loss), so weights exist for callbacks, saving and the catalogue scorer.
        zero = tf.constant([0])
        model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
        batches = _Batches(model, data, inputs, cfg, strategy)
        model.compile(
            optimizer=get_optimizer(cfg["optimizer"], cfg["learning_rate"]),
            steps_per_execution=_steps_per_execution(cfg, save_freq, batches.steps),
        )
    start = resume_point(backup_dir, batches.steps)
    early_stopping = ResumableEarlyStopping(
        monitor=monitor, mode="max", patience=cfg["patience"], restore_best_weights=True
    )
    all_callbacks = [RankingEvaluation(data, protocol=protocol), early_stopping]
    if log_dir:
        all_callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    if checkpoint_dir:
        all_callbacks.append(
            tf.keras.callbacks.ModelCheckpoint(
                str(Path(checkpoint_dir) / "best.weights"),
                monitor=monitor,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            )
        )
    all_callbacks.extend(callbacks)
    backup = None
    if backup_dir is not None:
        run_id = fingerprint(model, cfg, batches.steps)
        backup = TrainingBackup(backup_dir, batches.steps, run_id, save_freq, early_stopping,
                                chief=is_chief(strategy))  # fmt: skip
        all_callbacks.append(backup)  # last: it saves the state the others just updated
    if verbose:
        print(_describe(strategy, model))
        if start != (0, 0):
            print(f"resuming from {backup_dir}: epoch {start[0] + 1}, step {start[1]}")
    if start[0] >= epochs or finished(backup_dir, start[0]):
        epochs = start[0]  # the run had ended: fit only restores its state and cleans up
    verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose  # no \r in logs
    history = model.fit(
        batches.dataset(start),
        epochs=epochs,
        steps_per_epoch=batches.steps,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    if backup is not None:
        merged = {}
        for logs in backup.history:
            for name, value in logs.items():
                merged.setdefault(name, []).append(value)
        history.history, history.epoch = merged, list(range(len(backup.history)))
    return history


class _Batches:
    """The training input of one fit: per-epoch batches for any strategy, and their count."""

    def __init__(self, model, data, inputs, cfg, strategy):
        self.model, self.data, self.inputs, self.cfg = model, data, inputs, cfg
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.global_batch = cfg["batch_size"] * self.replicas
        if grouped_by_positive(model):
            # Grouped batches (positives with their negatives): each replica gets the same
            # whole number of positives, batch_size // (1 + k).
            negatives = cfg["num_negatives"]
            positives = grouped_batch_rows(cfg["batch_size"], negatives) * self.replicas
            self.global_batch = positives * (1 + negatives)
        self.drop_remainder = self.replicas > 1
        self.steps = steps_per_epoch(
            model, data, cfg["num_negatives"], self.global_batch, self.drop_remainder
        )

    def _options(self, seed, epochs, on_worker=False):
        return dict(
            num_negatives=self.cfg["num_negatives"],
            batch_size=self.global_batch,
            distribution=self.cfg["negative_distribution"],
            seed=seed,
            inputs=self.inputs,
            epochs=epochs,
            drop_remainder=self.drop_remainder,
            on_worker=on_worker,
            prepared=True,
        )

    def dataset(self, start: tuple[int, int]):
        """Epochs ``start[0]..`` (the first one from step ``start[1]``); under
        parameter_server, a `DatasetCreator` each worker runs on its own endless stream."""
        first, step = start
        if is_parameter_server(self.strategy):
            seed = self.cfg["seed"]

            def dataset_fn(context):
                # Workers run the same traced function: a clock salt gives each its own order.
                salt = tf.cast(tf.timestamp() * 1e6, tf.int64)
                mine = epoch_seed(seed, salt)
                options = self._options(mine, (first, None), on_worker=True)
                return training_dataset(self.model, self.data, **options)

            options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
            return tf.keras.utils.experimental.DatasetCreator(dataset_fn, options)
        last = max(self.cfg["epochs"], first + 1)  # a finished run reads none of it
        options = self._options(self.cfg["seed"], (first, last))
        ds = training_dataset(self.model, self.data, **options).skip(step)
        shard = tf.data.Options()
        # Each worker keeps its replicas' slices of every global batch (in-memory data).
        shard.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(shard)

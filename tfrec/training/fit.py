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

from tfrec.data.splitdata import SplitData
from tfrec.evaluation.protocols import evaluate
from tfrec.evaluation.scoring import CatalogueScorer
from tfrec.features.inputs import ModelInputs
from tfrec.models.registry import TRAIN_DEFAULTS, check_settings, train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.training.pipelines import training_dataset, training_inputs


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


def fit(model, data: SplitData, callbacks=(), verbose="auto", log_dir=None, checkpoint_dir=None,
        **settings):  # fmt: skip
    """Compiles and fits `model` on `data`'s train split; returns the Keras History.

    Settings (defaults in `tfrec.models.TRAIN_DEFAULTS`, with the model's registered overrides,
    see `tfrec.models.train_defaults`; an unknown one is an error):
    ``epochs``, ``batch_size``, ``learning_rate``, ``optimizer`` ("adam", "lazy_adam" for
    embedding tables of 10^5+ ids, "adagrad", or a tf.keras optimizer), ``num_negatives`` and
    ``negative_distribution`` (for pointwise tasks and mixed negatives), ``patience`` and
    ``monitor`` (early stopping on a validation ranking metric, best epoch restored), ``seed``.
    TensorBoard and checkpoint callbacks are added when `log_dir` / `checkpoint_dir` are given.
    """
    check_settings(settings, TRAIN_DEFAULTS, "training setting(s)")
    cfg = {**train_defaults(getattr(model, "registry_name", None)), **settings}
    epochs = cfg["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be an integer >= 1. Received: epochs={epochs!r}")
    tf.keras.utils.set_random_seed(cfg["seed"])
    model.compile(optimizer=get_optimizer(cfg["optimizer"], cfg["learning_rate"]))
    monitor = cfg["monitor"]
    all_callbacks = [
        RankingEvaluation(data, protocol=_protocol(monitor)),
        tf.keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=cfg["patience"], restore_best_weights=True
        ),
    ]
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
    inputs = training_inputs(model, data)
    ds = training_dataset(
        model,
        data,
        num_negatives=cfg["num_negatives"],
        batch_size=cfg["batch_size"],
        distribution=cfg["negative_distribution"],
        seed=cfg["seed"],
        inputs=inputs,
    )
    # One (user, item) pair builds every layer before training (which goes through
    # compute_loss), so weights exist for callbacks, saving and the catalogue scorer.
    zero = tf.constant([0])
    model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
    verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose  # no \r in logs
    return model.fit(ds, epochs=epochs, callbacks=all_callbacks, verbose=verbose)

"""Resumable training: a killed `fit` rerun with the same arguments continues where it stopped.

Why this exists: a run killed at step 327 of 432 must not start over, and must not end
differently from a run that was never killed. Keras' `BackupAndRestore` checkpoints the model,
its optimizer and the (epoch, step) position, for every strategy; `TrainingBackup` adds what
Keras leaves out:

* the Python state of the callbacks that decide training: `ResumableEarlyStopping` (patience
  count, best value, best epoch and best weights) and the history of the completed epochs
  (including their validation ranking metrics), written next to the checkpoint as
  ``state/epochs-<n>.json`` (+ ``.npz`` for the best weights) by the chief, atomically;
* a fingerprint of the run (model config, training settings, steps per epoch): a backup of a
  different run is refused instead of being silently mixed in;
* batch-level backups (``save_freq=N``) that never separate an epoch's end from its
  validation metrics.

The data is the other half: `fit` builds epochs whose order and negatives depend only on
(seed, epoch) (`tfrec.data.pipelines.epoch_seed`) and skips the batches of a partly done epoch,
so the resumed run sees exactly the batches the uninterrupted one saw. What is not restored:
dropout masks (TF's op-level random state), so a model with dropout resumes within noise
rather than bit for bit; and the input order under ``parameter_server``, which is random per
worker by design (asynchronous training). `RankingEvaluation` keeps no state to restore.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

_EPOCH_KEY = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"
_BATCH_KEY = "ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"


def check_save_freq(save_freq):
    """``"epoch"`` or a positive number of steps."""
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1:
        raise ValueError(
            "`save_freq` must be 'epoch' or a number of steps >= 1. "
            f"Received: save_freq={save_freq!r}"
        )
    return save_freq


def resume_point(backup_dir, steps_per_epoch: int) -> tuple[int, int]:
    """(epoch, step) a run backed up in `backup_dir` continues from; (0, 0) without a backup.

    Mirrors Keras' `BackupAndRestore`: a backup taken after step s of epoch e resumes at step
    s + 1 of epoch e, one taken at an epoch's last step at step 0 of the next epoch.
    """
    if backup_dir is None:
        return 0, 0
    latest = tf.train.latest_checkpoint(str(Path(backup_dir) / "chief"))
    if latest is None:
        return 0, 0
    reader = tf.train.load_checkpoint(latest)
    epoch, batch = int(reader.get_tensor(_EPOCH_KEY)), int(reader.get_tensor(_BATCH_KEY))
    if epoch < 0:
        return 0, 0
    if batch < 0 or batch >= steps_per_epoch - 1:
        return epoch + 1, 0
    return epoch, batch + 1


def finished(backup_dir, completed: int) -> bool:
    """Whether the run backed up after `completed` epochs had already stopped early (it was
    killed before its end), so resuming it must train no further epoch."""
    if backup_dir is None or completed == 0:
        return False
    path = Path(backup_dir) / "state" / f"epochs-{completed}.json"
    if not path.exists():
        return False
    stopping = json.loads(path.read_text()).get("early_stopping") or {}
    return stopping.get("stopped_epoch", 0) > 0


def fingerprint(model, settings: dict, steps_per_epoch: int) -> str:
    """A digest of what must not change between a run and its resumption."""
    config = tf.keras.layers.serialize(model)
    for key in ("compile_config", "build_config"):
        config.pop(key, None)
    kept = {k: v for k, v in settings.items() if k != "epochs"}
    blob = json.dumps([_unnamed(config), kept, steps_per_epoch], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _unnamed(config):
    """`config` without layer names, which Keras numbers per process ("fm_3")."""
    if isinstance(config, dict):
        return {k: _unnamed(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list | tuple):
        return [_unnamed(v) for v in config]
    return config


def _write_atomic(path: Path, write) -> None:
    partial = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as file:
        np.savez(file, **arrays)


class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """`tf.keras.callbacks.EarlyStopping` whose state a `TrainingBackup` saves and restores.

    Exists because Keras' early stopping forgets its patience count, its best value and its
    best weights when a run restarts, so a resumed run would stop late and could restore a
    worse epoch. Same arguments and behaviour as the Keras callback.
    """

    def state(self) -> tuple[dict, list | None]:
        """(JSON-able state, best weights or None)."""
        best = float(self.best) if np.isfinite(self.best) else None
        meta = {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": best,
                "best_epoch": self.best_epoch}  # fmt: skip
        return meta, self.best_weights

    def restore(self, meta: dict, weights: list | None) -> None:
        self.wait, self.stopped_epoch = int(meta["wait"]), int(meta["stopped_epoch"])
        if meta["best"] is not None:
            self.best = meta["best"]
        self.best_epoch = int(meta["best_epoch"])
        self.best_weights = weights


class TrainingBackup(tf.keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` plus the callbacks' state and the history (see the module docstring).

    Must come after every callback whose state it saves (it backs up at epoch end, once they
    have updated). All processes of a cluster run it (the checkpoint write is collective);
    only the chief writes the state files.

    Args:
      backup_dir: Directory of the backup (shared by every worker of a cluster).
      steps_per_epoch: Steps of one epoch.
      run_id: `fingerprint` of the run; a backup with another one is refused.
      save_freq: "epoch" or a number of steps between backups (epoch ends always back up).
      early_stopping: The `ResumableEarlyStopping` to save and restore, or None.
      chief: Whether this process writes the state files.
    """

    def __init__(self, backup_dir, steps_per_epoch, run_id, save_freq="epoch",
                 early_stopping=None, chief=True):  # fmt: skip
        super().__init__(str(backup_dir), save_freq=check_save_freq(save_freq))
        self.directory = Path(backup_dir)
        self.steps_per_epoch, self.run_id = int(steps_per_epoch), run_id
        self.early_stopping, self.chief = early_stopping, chief
        self.history: list[dict] = []
        self.resumed_from = (0, 0)

    @property
    def _state_dir(self) -> Path:
        return self.directory / "state"

    def on_train_begin(self, logs=None):
        self.resumed_from = resume_point(self.directory, self.steps_per_epoch)
        if self.resumed_from != (0, 0):
            self._load_state(self.resumed_from[0])
        elif self.chief:  # a fresh start: no state of an older run may linger
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._save_state(0)
        super().on_train_begin(logs)

    def _load_state(self, completed: int) -> None:
        path = self._state_dir / f"epochs-{completed}.json"
        if not path.exists():
            raise FileNotFoundError(
                f"The backup in {self.directory} resumes after {completed} epoch(s) but has no "
                f"{path.name} (the state of those epochs). Fix: delete {self.directory} to "
                "start over."
            )
        state = json.loads(path.read_text())
        if state["run_id"] != self.run_id:
            raise ValueError(
                f"The backup in {self.directory} belongs to a different run (model, settings "
                f"or data changed). Received: run {self.run_id}, backup {state['run_id']}. Fix: "
                "rerun with the same command, or delete the backup directory to start over."
            )
        self.history = state["history"]
        if self.early_stopping is not None and state.get("early_stopping"):
            weights = None
            if state["best_weights"]:
                with np.load(self._state_dir / state["best_weights"]) as arrays:
                    weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]
            self.early_stopping.restore(state["early_stopping"], weights)

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            return  # the epoch-end backup, after validation, covers the last step
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        self.history.append(logs)
        if self.chief:
            self._save_state(epoch + 1)
        self._training_state._ckpt_saved_batch.assign(self.steps_per_epoch - 1)
        self._backup(epoch=epoch)
        if self.chief:
            for old in self._state_dir.glob("epochs-*"):
                number = int(old.name.split("-")[1].split(".")[0])
                if number < epoch:  # keep the previous epoch's until this backup exists
                    old.unlink(missing_ok=True)

    def _save_state(self, completed: int) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        state = {"run_id": self.run_id, "history": self.history, "early_stopping": None,
                 "best_weights": None}  # fmt: skip
        if self.early_stopping is not None:
            meta, weights = self.early_stopping.state()
            state["early_stopping"] = meta
            if weights is not None:
                name = f"epochs-{completed}.npz"
                arrays = {f"w{i}": w for i, w in enumerate(weights)}
                _write_atomic(self._state_dir / name, lambda p: _savez(p, arrays))
                state["best_weights"] = name
        text = json.dumps(state)
        _write_atomic(self._state_dir / f"epochs-{completed}.json", lambda p: p.write_text(text))

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.chief:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            try:
                self.directory.rmdir()
            except OSError:
                pass  # not empty (other files) or already gone

"""Resumable training (tfrec/training/resume.py): a killed run, rerun, ends as if never killed.

The headline test kills a real `tfrec train` process with SIGKILL in the middle of its second
epoch, reruns the same command, and requires the run it leaves to equal an uninterrupted run's:
the same test metrics and per-epoch validation metrics (exactly: the data of every epoch is a
function of (seed, epoch) and the skipped steps are the ones already trained, so nothing but
the interruption differs), each epoch counted once. The others crash `fit` at chosen points
(an exception stands in for the kill: what is on disk is the same) to check the early-stopping
state, the "already finished" case and the refusal of a backup of a different run.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from tfrec import cli
from tfrec.models import TRAIN_DEFAULTS, build_model
from tfrec.training import fit
from tfrec.training.pipelines import steps_per_epoch
from tfrec.training.resume import resume_point

SMALL = {"embedding_dim": 4, "history_length": 3}
MONITOR = "val_full_ndcg@10"


def test_killed_tfrec_train_resumes_mid_epoch_and_ends_like_an_uninterrupted_run(
    movielens_files, kit, processes, tmp_path, capsys, single_process_run
):
    killed = tmp_path / "killed"
    argv = kit.train_argv(movielens_files, killed, extra=["--save-freq", "2"])
    child = processes.cli(argv, tmp_path / "killed.log")
    seen = kit.wait_for_backup(f"{killed}.backup", kit.STEPS, child, min_epoch=1)
    processes.kill(child)  # SIGKILL, in the middle of the second (last) epoch
    assert child.returncode == -9 and not killed.exists(), kit.log_text(tmp_path / "killed.log")
    capsys.readouterr()

    assert cli.main(argv) == 0  # the same command again
    out = capsys.readouterr().out
    resumed = re.search(r"resuming from \S+: epoch (\d+), step (\d+)", out)
    assert resumed, out[-2000:]
    epoch, step = int(resumed[1]) - 1, int(resumed[2])
    assert (epoch, step) >= seen and epoch == 1 and 0 < step < kit.STEPS  # mid second epoch
    assert not (tmp_path / "killed.backup").exists()  # removed once the run is saved

    got = json.loads((killed / "run.json").read_text())
    expected = json.loads((single_process_run / "run.json").read_text())
    assert got["metrics"]["epochs"] == expected["metrics"]["epochs"] == 2
    for name, value in expected["metrics"].items():
        if name != "train_seconds":
            assert got["metrics"][name] == pytest.approx(value, abs=1e-9), name
    for name, values in expected["history"].items():
        assert len(got["history"][name]) == 2, name  # each epoch once
        if name.startswith("val_"):
            np.testing.assert_allclose(got["history"][name], values, atol=1e-9, err_msg=name)
    # Training losses are epoch means: the resumed epoch's covers only the steps after the
    # resume; the completed epoch's is the uninterrupted one.
    assert got["history"]["loss"][0] == pytest.approx(expected["history"]["loss"][0])


class Crash(tf.keras.callbacks.Callback):
    """Raises at the start of epoch `epoch` (or at the end of training): a stand-in for a kill."""

    def __init__(self, epoch=None, at_end=False):
        super().__init__()
        self.epoch, self.at_end = epoch, at_end

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError(f"crash at epoch {epoch}")

    def on_train_end(self, logs=None):
        if self.at_end:
            raise RuntimeError("crash after the last epoch")


class Epochs(tf.keras.callbacks.Callback):
    """Counts the epochs a fit trains."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.count += 1


def schedule():
    """Epochs 0-1 learn, later ones climb the loss: early stopping stops after `patience`."""
    return tf.keras.callbacks.LearningRateScheduler(lambda e, lr: 1e-2 if e < 2 else -1e-2)


SETTINGS = dict(epochs=8, patience=2, batch_size=128, monitor=MONITOR, verbose=0)


class Recorder(tf.keras.callbacks.Callback):
    """Every epoch's logs."""

    def __init__(self):
        super().__init__()
        self.logs = {}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in logs.items():
            self.logs.setdefault(name, []).append(value)


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A run that trained to its early stop and crashed right after (before deleting its
    backup): its logs and final (best-epoch) weights are the uninterrupted run's."""
    backup = tmp_path_factory.mktemp("finished") / "backup"
    model, recorder = build_model("fm", tiny_data, **SMALL), Recorder()
    with pytest.raises(RuntimeError, match="crash after the last epoch"):
        fit(model, tiny_data, callbacks=[schedule(), recorder, Crash(at_end=True)],
            backup_dir=backup, **SETTINGS)  # fmt: skip
    return recorder.logs, model.get_weights(), backup


def assert_same_run(history, model, finished):
    logs, weights, _ = finished
    assert sorted(history.history) == sorted(logs)
    for name in logs:
        if name.startswith("val_"):
            np.testing.assert_allclose(history.history[name], logs[name], atol=1e-9)
    for got, expected in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_early_stopping_state_and_history_survive_a_crash(tiny_data, tmp_path, finished):
    logs = finished[0]
    best = int(np.argmax(logs[MONITOR]))
    stop = len(logs[MONITOR])
    assert best <= 1 and stop == best + 3 < SETTINGS["epochs"]  # stopped early, best restored
    backup = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="crash at epoch"):
        model = build_model("fm", tiny_data, **SMALL)
        fit(model, tiny_data, callbacks=[schedule(), Crash(epoch=stop - 1)], backup_dir=backup,
            **SETTINGS)  # fmt: skip
    steps = steps_per_epoch(model, tiny_data, TRAIN_DEFAULTS["num_negatives"], 128)
    assert resume_point(backup, steps) == (stop - 1, 0)  # after the last completed epoch
    model, epochs = build_model("fm", tiny_data, **SMALL), Epochs()
    history = fit(model, tiny_data, callbacks=[schedule(), epochs], backup_dir=backup, **SETTINGS)
    assert epochs.count == 1  # only the epoch after the crash; patience carried over
    assert_same_run(history, model, finished)  # same stop, same best weights restored
    assert not backup.exists()


def test_a_run_killed_after_stopping_trains_no_more_and_other_runs_are_refused(tiny_data, finished):
    backup = finished[2]
    assert backup.exists()
    with pytest.raises(ValueError, match="belongs to a different run"):
        other = build_model("fm", tiny_data, **SMALL)
        fit(other, tiny_data, callbacks=[schedule()], backup_dir=backup,
            **{**SETTINGS, "learning_rate": 0.5})  # fmt: skip
    model, epochs = build_model("fm", tiny_data, **SMALL), Epochs()
    history = fit(model, tiny_data, callbacks=[schedule(), epochs], backup_dir=backup, **SETTINGS)
    assert epochs.count == 0  # it had stopped early: restore the best epoch, train nothing
    assert_same_run(history, model, finished)
    assert not backup.exists()


def test_save_freq_is_checked(tiny_data):
    model = build_model("fm", tiny_data, **SMALL)
    with pytest.raises(ValueError, match="Received: save_freq=0"):
        fit(model, tiny_data, backup_dir="unused", save_freq=0, epochs=1)

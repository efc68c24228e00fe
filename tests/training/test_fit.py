"""`fit` (tfrec/training/fit.py): settings, validation metrics, early stopping, reproducibility.

The early-stopping test forces a known shape of the validation curve: two epochs of learning,
then gradient *ascent* (a negative learning rate), which must make the model worse. It records
the weights at the end of every epoch and checks that the weights `fit` leaves are the best
epoch's, not the last one's, and that they reproduce the best logged metric. A `fit` that did
not restore (or restored the wrong epoch, or watched the metric in the wrong direction) fails.
"""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import evaluate_model
from tfrec.models import TRAIN_DEFAULTS, build_model
from tfrec.training import RankingEvaluation, fit
from tfrec.training.fit import CALLS_PER_EPOCH, _steps_per_execution

SMALL = {"embedding_dim": 4, "history_length": 3}
MONITOR = "val_full_ndcg@10"


class Recorder(tf.keras.callbacks.Callback):
    """The monitored metric and a copy of the weights at the end of every epoch."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor, self.metric, self.weights = monitor, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.metric.append(logs[self.monitor])
        self.weights.append([w.copy() for w in self.model.get_weights()])


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_early_stopping_restores_the_best_epochs_weights(tiny_data):
    model = build_model("fm", tiny_data, **SMALL)
    recorder = Recorder(MONITOR)
    # Epochs 0-1 learn; from epoch 2 on the optimizer climbs the loss instead.
    schedule = tf.keras.callbacks.LearningRateScheduler(lambda e, lr: 1e-2 if e < 2 else -1e-2)
    history = fit(model, tiny_data, callbacks=[schedule, recorder], epochs=6, patience=2,
                  batch_size=128, monitor=MONITOR, verbose=0)  # fmt: skip
    logged = history.history[MONITOR]
    assert logged == recorder.metric
    best = int(np.argmax(logged))
    assert best <= 1 < len(logged) - 1, logged  # the curve went up, then down
    assert len(logged) == best + 3 < 6, logged  # stopped after `patience` epochs without gain
    final = model.get_weights()
    assert same(final, recorder.weights[best])
    assert not same(final, recorder.weights[-1])
    restored = evaluate_model(model, tiny_data, "valid", protocols=("full",))
    assert restored["full_ndcg@10"] == pytest.approx(logged[best], abs=1e-9)
    assert restored["full_ndcg@10"] > logged[-1]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """Three one-epoch fits: seed 3 with every default setting passed explicitly and a
    checkpoint directory, seed 3 again, and seed 4 monitoring sampled HR@10."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    settings = {**TRAIN_DEFAULTS, "epochs": 1, "batch_size": 256, "num_negatives": 2, "seed": 3}
    out = {}
    for name, extra in (
        ("defaults", {"checkpoint_dir": checkpoints}),
        ("again", {}),
        ("sampled", {"seed": 4, "monitor": "val_sampled_hr@10"}),
    ):
        model = build_model("fm", tiny_data, **SMALL)
        history = fit(model, tiny_data, verbose=0, **{**settings, **extra})
        out[name] = model, history.history
    out["checkpoints"] = checkpoints
    return out


def test_every_default_setting_is_accepted(runs):
    _, logs = runs["defaults"]
    assert np.isfinite(logs["loss"]).all() and MONITOR in logs
    assert (runs["checkpoints"] / "best.weights.index").exists()


def test_same_seed_same_losses(runs):
    assert runs["again"][1]["loss"] == pytest.approx(runs["defaults"][1]["loss"], rel=1e-6)
    assert runs["sampled"][1]["loss"] != pytest.approx(runs["defaults"][1]["loss"], rel=1e-3)


def test_monitor_picks_the_validation_protocol(runs, tiny_data):
    model, logs = runs["sampled"]
    assert "val_sampled_hr@10" in logs and "val_sampled_ndcg@10" in logs
    assert not any(k.startswith("val_full_") for k in logs)
    again = evaluate_model(model, tiny_data, "valid", protocols=("sampled",))
    assert again["sampled_hr@10"] == pytest.approx(logs["val_sampled_hr@10"][0], abs=1e-9)


def test_bad_settings_are_named(tiny_data):
    model = build_model("fm", tiny_data, **SMALL)
    with pytest.raises(TypeError, match=r"Unknown training setting\(s\) \['epoch'\]"):
        fit(model, tiny_data, epoch=3)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        fit(model, tiny_data, epochs=0)
    with pytest.raises(ValueError, match="Received: monitor='loss'"):
        fit(model, tiny_data, monitor="loss", epochs=1)


def test_steps_per_execution_trains_the_same_steps(runs, tiny_data):
    """8 steps per call gives the same losses as one; a fit whose epoch is too short to earn the
    multi-step loop's tracing back (the "again" run: 8 steps an epoch) or that backs up every few
    steps runs one step per call."""
    settings = {**TRAIN_DEFAULTS, "epochs": 1, "batch_size": 4, "num_negatives": 2, "seed": 3}
    losses = {}
    for per_call in (8, 1):  # batches of 4: an epoch of 400+ steps
        model = build_model("fm", tiny_data, **SMALL)
        history = fit(model, tiny_data, verbose=0, **{**settings, "steps_per_execution": per_call})
        assert model._steps_per_execution.numpy() == per_call
        losses[per_call] = history.history["loss"]
    assert losses[8] == pytest.approx(losses[1], rel=1e-5)
    assert runs["again"][0]._steps_per_execution.numpy() == 1
    cfg = {"steps_per_execution": 8}
    assert _steps_per_execution(cfg, "epoch", CALLS_PER_EPOCH * 8) == 8
    assert _steps_per_execution(cfg, "epoch", CALLS_PER_EPOCH * 8 - 1) == 1
    assert _steps_per_execution(cfg, 10, 10_000) == 1  # a backup every 10 steps
    with pytest.raises(ValueError, match="Received: steps_per_execution=0"):
        fit(model, tiny_data, steps_per_execution=0, epochs=1)


def test_ranking_evaluation_checks_its_protocol(tiny_data):
    with pytest.raises(ValueError, match="Received: 'loo'"):
        RankingEvaluation(tiny_data, protocol="loo")

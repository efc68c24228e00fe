"""Run directories (save/load, trusted classes only, atomic replacement) and the baseline row.

A run directory is loaded by `tfrec evaluate` / `tfrec export`, possibly one a user downloaded:
loading must never run code from it. Its ``model.json`` may name only tfrec's registered
classes and a few built-in Keras layers; anything else (a Lambda whose bytecode would run on the
first call, a class from any importable module) is refused before Keras deserializes anything.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfrec import workflow
from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.evaluation import score_fn
from tfrec.features.inputs import ModelInputs
from tfrec.models import DeepFM, build_model
from tfrec.workflow import (
    TrainResult,
    baseline_metrics,
    check_config,
    load_model,
    load_run,
    recover_run,
    save_model,
    save_run,
)

SOURCE = {"variant": "100k", "source": "synthetic", "data_dir": None, "path": None}


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(num_users=30, num_movies=40, ratings_per_user=6, seed=2)
    return SplitData.from_movielens(ml)


@pytest.fixture(scope="module")
def model(data):
    """A small DeepFM, built by one call (its random weights are what must survive)."""
    model = build_model("deepfm", data, embedding_dim=4, dnn_units=[4], history_length=3)
    model(ModelInputs.build(model, data, "test").gather(tf.constant([0]), tf.constant([0])))
    return model


@pytest.fixture
def from_source(monkeypatch, data):
    """`load_run` recomputes the split from run.json's source: here, the generated data."""
    monkeypatch.setattr(workflow, "load_data", lambda **source: data)


def _scores(model, data):
    users = np.arange(5)
    return score_fn(model, data)(users, np.tile(np.arange(data.num_items), (5, 1)))


def _run(model, data, directory, metrics):
    result = TrainResult(model, data, metrics, {"loss": [0.7, 0.6]})
    save_run(result, directory, "deepfm", SOURCE, {"embedding_dim": 4}, {"epochs": 2})


def test_save_model_writes_config_and_checkpoint_and_loads_back(model, data, tmp_path):
    save_model(model, tmp_path)
    config = json.loads((tmp_path / "model.json").read_text())
    assert config["registered_name"] == "tfrec>DeepFM"
    assert "compile_config" not in config and "build_config" not in config
    assert (tmp_path / "weights" / "model.index").exists()
    loaded = load_model(tmp_path, data)
    assert type(loaded) is DeepFM and loaded.history_length == 3
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(_scores(loaded, data), _scores(model, data), atol=1e-6)
    # A fresh build scores differently: the weights really came from the checkpoint.
    fresh = load_model(tmp_path, data)
    fresh.set_weights([w + 0.1 for w in fresh.get_weights()])
    assert not np.allclose(_scores(fresh, data), _scores(model, data), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="No model.json"):
        load_model(tmp_path / "missing", data)


def _payload(path):
    """A function that creates `path` when it runs: the attack a Lambda layer carries."""
    return lambda x: (open(path, "w").close(), x)[1]  # noqa: SIM115


def _lambda_config(path):
    return tf.keras.layers.serialize(tf.keras.layers.Lambda(_payload(str(path))))


def test_the_payload_is_live_when_keras_loads_it_unchecked(tmp_path):
    # Control: the hand-written Lambda config does create its file once Keras (in unsafe
    # mode) deserializes and calls it, so the refusals below are what keeps it from running.
    marker = tmp_path / "ran"
    config = _lambda_config(marker)
    layer = tf.keras.saving.deserialize_keras_object(config, safe_mode=False)
    layer(tf.constant([1.0]))
    assert marker.exists()


@pytest.mark.parametrize("spoof", ["lambda", "registered_as_tfrec", "other_module"])
def test_a_run_naming_an_untrusted_class_is_refused_before_deserializing(
    spoof, model, data, tmp_path, monkeypatch, from_source
):
    run = tmp_path / "run"
    _run(model, data, run, {"full_hr@10": 0.5})
    marker = tmp_path / "pwned"
    config = json.loads((run / "model.json").read_text())
    evil = _lambda_config(marker)
    name = "Lambda"
    if spoof == "registered_as_tfrec":  # Keras would still resolve it to its own Lambda
        evil["registered_name"] = "tfrec>Lambda"
    elif spoof == "other_module":  # Keras would import the module and take the class
        evil = {"module": "subprocess", "class_name": "Popen", "config": {"args": "touch x"}}
        name = "Popen"
    config["config"]["query_tower"] = evil  # hidden inside a trusted tfrec model
    (run / "model.json").write_text(json.dumps(config))

    calls = []
    monkeypatch.setattr(tf.keras.layers, "deserialize", lambda *a, **k: calls.append(a))
    for load in (lambda: load_run(run), lambda: load_model(run, data)):
        with pytest.raises(ValueError, match=f"names the class '{name}'"):
            load()
    assert calls == [] and not marker.exists()


def test_check_config_accepts_tfrec_and_allowlisted_keras_classes_only(model):
    check_config(tf.keras.layers.serialize(model))
    check_config(tf.keras.layers.serialize(tf.keras.layers.Dropout(0.1)))
    for layer in (tf.keras.layers.Conv1D(2, 3), tf.keras.layers.Lambda(lambda x: x)):
        with pytest.raises(ValueError, match=type(layer).__name__):
            check_config([{"nested": tf.keras.layers.serialize(layer)}], "x.json")
    unregistered = {"module": "tfrec.models", "class_name": "X", "config": {}}
    with pytest.raises(ValueError, match="'X'"):
        check_config({**unregistered, "registered_name": "tfrec>NotAClass"})


def test_save_run_replaces_a_run_and_leaves_no_temporary_directory(
    model, data, tmp_path, from_source
):
    run = tmp_path / "run"
    _run(model, data, run, {"full_hr@10": 0.1})
    _run(model, data, run, {"full_hr@10": 0.2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in run.iterdir()) == ["model.json", "run.json", "weights"]
    loaded, split, meta = load_run(run)
    assert split is data and meta["metrics"] == {"full_hr@10": 0.2}
    assert meta["model"] == "deepfm" and meta["train"] == {"epochs": 2}


def test_saving_a_run_removes_staging_of_killed_runs_only(model, data, tmp_path, from_source):
    # Issue 14, finding 11: a run killed while saving leaves ".tmp-<pid>-<name>" behind.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process that is gone
    then = time.time() - 7200
    killed, live = tmp_path / f".tmp-{child.pid}-run", tmp_path / f".tmp-{os.getppid()}-other"
    for path in (killed, live):
        (path / "weights").mkdir(parents=True)
        os.utime(path, (then, then))
    _run(model, data, tmp_path / "run", {"full_hr@10": 0.1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "run"])


def test_a_failure_at_the_final_rename_keeps_the_previous_run(
    model, data, tmp_path, monkeypatch, from_source
):
    run = tmp_path / "run"
    _run(model, data, run, {"full_hr@10": 0.1})
    before = (run / "run.json").read_text()
    real_replace, calls = os.replace, []

    def failing_second_call(src, dst):  # 1: run -> .old-run, 2: staging -> run (fails)
        calls.append((str(src), str(dst)))
        if len(calls) == 2:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second_call)
    with pytest.raises(OSError, match="disk full"):
        _run(model, data, run, {"full_hr@10": 0.9})
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(calls) == 3  # the third put the previous run back
    assert (run / "run.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_run(run)[2]["metrics"] == {"full_hr@10": 0.1}


def test_a_crash_between_the_renames_is_recovered(model, data, tmp_path, from_source):
    # A killed process can leave the previous run renamed aside and nothing in its place.
    run = tmp_path / "run"
    _run(model, data, run, {"full_hr@10": 0.1})
    os.replace(run, tmp_path / ".old-run")
    recover_run(run)
    assert load_run(run)[2]["metrics"] == {"full_hr@10": 0.1}
    # load_run and the next save_run recover it by themselves too.
    os.replace(run, tmp_path / ".old-run")
    assert load_run(run)[2]["metrics"] == {"full_hr@10": 0.1}
    os.replace(run, tmp_path / ".old-run")
    _run(model, data, run, {"full_hr@10": 0.3})
    assert load_run(run)[2]["metrics"] == {"full_hr@10": 0.3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    shutil.rmtree(run)
    with pytest.raises(FileNotFoundError, match="tfrec train deepfm --output"):
        load_run(run)


def test_baseline_metrics_keys_and_full_ranking_by_hand(data):
    metrics = baseline_metrics(data)
    names = ("hr@10", "ndcg@10", "recall@10", "precision@10", "map@10", "mrr")
    assert set(metrics) == {f"{p}_{m}" for p in ("sampled", "full") for m in names}
    # Popularity as of test: train + valid counts; ties count against the target.
    users, targets = data.targets("test")
    counts = data.item_counts("test").astype(float)
    seen = data.seen("test").dense_mask(users)
    target = counts[targets]
    ahead = (counts[None, :] >= target[:, None]) & ~seen
    ahead[np.arange(users.size), targets] = False
    rank = ahead.sum(axis=1)
    assert metrics["full_hr@10"] == pytest.approx(np.mean(rank < 10))
    assert metrics["full_mrr"] == pytest.approx(np.mean(1.0 / (rank + 1)))
    ndcg = np.where(rank < 10, 1.0 / np.log2(rank + 2), 0.0)
    assert metrics["full_ndcg@10"] == pytest.approx(ndcg.mean())
    assert metrics["sampled_hr@10"] >= metrics["full_hr@10"]
    table = workflow.format_results({"popularity": metrics})
    assert table.splitlines()[0].split() == ["model", *workflow.HEADLINE]


def test_load_data_takes_a_time_slice_and_splits_by_time(tmp_path):
    from tfrec.data import chronological_split, time_slice
    from tfrec.data.synthetic import synthetic_tables, write_grouplens_100k

    tables = synthetic_tables(num_users=30, num_movies=40, ratings_per_user=6, seed=2)
    source = {"source": "local", "path": write_grouplens_100k(tables, tmp_path / "ml"),
              "data_dir": tmp_path / "cache"}  # fmt: skip
    whole = workflow.load_data(**source)
    assert len(whole.split.test["user_index"]) == whole.num_users  # leave-one-out by default
    sliced = workflow.load_data(**source, time_slice="0.5", split_by="chronological")
    past = time_slice(whole.movielens, 0.5)
    assert sliced.num_users == past.num_users and sliced.num_items == past.num_movies
    expected = chronological_split(past.ratings)
    for got, want in zip(sliced.split, expected, strict=True):
        np.testing.assert_array_equal(got["timestamp"], want["timestamp"])
    with pytest.raises(ValueError, match="split_by='random'"):
        workflow.load_data(**source, split_by="random")

"""Training under tf.distribute (tfrec/training/distribute.py, fit's strategy support).

In-process: strategies by name and their errors, which process is the chief, a mirrored fit
that must equal the default one and export ordinary variables, shards joined back. Real
clusters of separate processes on 127.0.0.1, each with its own TF_CONFIG:

* two `multi_worker` workers (per-worker batch 320) against one process (batch 640): the same
  6 global batches per epoch, so the metrics agree up to float summation order; the chief
  alone writes the run, which exports a servable scoring like the run's weights;
* the same two workers, one killed with SIGKILL mid-epoch (then the other, as a cluster
  manager restarts the job), restarted with the same commands: they resume and end with the
  uninterrupted run's metrics;
* the README's `parameter_server` recipe (chief, 2 workers, 2 parameter servers), run as
  written on free ports: tables split across the servers, loss falling, an export whose
  variables are whole and whose scores match the run's model.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec import cli, workflow
from tfrec.features.inputs import feature_store
from tfrec.models import build_model
from tfrec.serving import recommender_module
from tfrec.training import STRATEGIES, fit, is_chief, ordinary_copy, strategy_from_name
from tfrec.training.distribute import _regroup

README = Path(__file__).resolve().parents[2] / "README.md"
SMALL = {"embedding_dim": 4, "dnn_units": [4], "history_length": 3}


def config(cluster, kind, index):
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def test_strategies_by_name_and_cluster_errors(monkeypatch):
    assert STRATEGIES == ("default", "mirrored", "multi_worker", "parameter_server")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy_from_name("default") is tf.distribute.get_strategy()
    assert isinstance(strategy_from_name("mirrored"), tf.distribute.MirroredStrategy)
    with pytest.raises(ValueError, match="Received: strategy='horovod'"):
        strategy_from_name("horovod")
    with pytest.raises(ValueError, match="cluster has 'ps' and 'worker'"):
        strategy_from_name("parameter_server")
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}
    monkeypatch.setenv("TF_CONFIG", config(cluster, "worker", 1))
    with pytest.raises(ValueError, match="only the chief runs `tfrec train`"):
        strategy_from_name("parameter_server")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategy_from_name("multi_worker")
    monkeypatch.setenv("TF_CONFIG", config(cluster, "worker", 2))
    with pytest.raises(ValueError, match="is not in its cluster"):
        is_chief()
    # One writer per cluster: the chief, else worker 0, else the only process.
    for tf_config, chief in (
        (None, True),
        (config(cluster, "chief", 0), True),
        (config(cluster, "worker", 0), False),
        (config({"worker": ["b:1", "c:1"]}, "worker", 0), True),
        (config({"worker": ["b:1", "c:1"]}, "worker", 1), False),
    ):
        if tf_config is None:
            monkeypatch.delenv("TF_CONFIG")
        else:
            monkeypatch.setenv("TF_CONFIG", tf_config)
        assert is_chief() is chief, tf_config


def test_regroup_joins_row_shards():
    table, bias = np.arange(14.0).reshape(7, 2), np.float32(3.0)
    kernel = np.ones((2, 3))
    joined = _regroup([table[:4], table[4:], bias, kernel], [(7, 2), (), (2, 3)])
    np.testing.assert_array_equal(joined[0], table)
    assert joined[1] == bias and joined[2].shape == (2, 3)
    with pytest.raises(ValueError, match="do not make"):
        _regroup([table[:4], table[4:6]], [(5, 2)])
    with pytest.raises(ValueError, match="left over"):
        _regroup([bias, bias], [()])


def test_a_model_built_outside_the_strategy_is_refused(tiny_data):
    model = build_model("deepfm", tiny_data, **SMALL)
    with pytest.raises(ValueError, match="created outside the strategy's scope"):
        fit(model, tiny_data, strategy=tf.distribute.MirroredStrategy(), epochs=1)


def test_a_mirrored_fit_exports_ordinary_variables_scoring_like_the_trained_ones(tiny_data):
    history = fit(lambda: build_model("deepfm", tiny_data, **SMALL), tiny_data,
                  strategy="mirrored", epochs=1, batch_size=128, num_negatives=2,
                  verbose=0)  # fmt: skip
    mirrored = history.model
    assert isinstance(mirrored.distribute_strategy, tf.distribute.MirroredStrategy)
    assert all(isinstance(v, tf.distribute.DistributedValues) for v in mirrored.variables)
    assert np.isfinite(history.history["loss"]).all() and "val_full_ndcg@10" in history.history

    users, items = tiny_data.user_ids[:6].astype(bytes), tiny_data.item_ids[:6].astype(bytes)
    ids = {"user_id": tf.constant(users), "movie_id": tf.constant(items)}
    features = feature_store(tiny_data, "all", SMALL["history_length"]).join(ids)
    copy = ordinary_copy(mirrored, features)
    assert copy is not mirrored and copy.distribute_strategy is tf.distribute.get_strategy()
    assert not any(isinstance(v, tf.distribute.DistributedValues) for v in copy.variables)
    np.testing.assert_allclose(copy.score(features), mirrored.score(features), atol=1e-6)
    assert ordinary_copy(copy, features) is copy  # an ordinary model is kept as is

    module = recommender_module(mirrored, tiny_data)  # what export_model saves
    assert module.model is not mirrored
    assert not any(isinstance(v, tf.distribute.DistributedValues) for v in module.model_state)
    served = module.score_ids(ids["user_id"], ids["movie_id"])["score"]
    np.testing.assert_allclose(served.numpy(), mirrored.score(features).numpy(), atol=1e-5)


def test_train_flags(tmp_path, monkeypatch):
    parser = cli.build_parser()
    args = parser.parse_args(["train", "deepfm", "--output", str(tmp_path / "run")])
    assert (args.strategy, args.backup_dir, args.no_backup, args.save_freq) == (
        "default",
        None,
        False,
        "epoch",
    )
    strategy, backup = cli._distribution(args, tmp_path / "run")
    assert strategy is tf.distribute.get_strategy() and backup == tmp_path / "run.backup"
    args = parser.parse_args(["train", "deepfm", "--no-backup", "--save-freq", "50"])
    assert cli._distribution(args, tmp_path / "run")[1] is None and args.save_freq == 50
    for bad in (["--save-freq", "0"], ["--strategy", "horovod"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "deepfm", *bad])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli.main(["train", "deepfm", "--strategy", "parameter_server", "--source", "local",
                     "--path", str(tmp_path)])  # fmt: skip
    assert code == 2  # a clear error naming TF_CONFIG, before any data is read


# ------------------------------------------------------------------ multi-worker clusters


def start_workers(processes, kit, argv, tmp_path, tag):
    ports = kit.free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        processes.cli(
            argv,
            tmp_path / f"{tag}{i}.log",
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )  # fmt: skip
        for i in range(2)
    ]


@pytest.fixture(scope="module")
def multi_worker_run(movielens_files, kit, module_processes, tmp_path_factory):
    """Two workers (batch 320 each, global 640) trained to the end: the run directory."""
    tmp = tmp_path_factory.mktemp("multi-worker")
    argv = kit.train_argv(movielens_files, tmp / "run", batch_size=kit.GLOBAL_BATCH // 2,
                          extra=["--strategy", "multi_worker"])  # fmt: skip
    workers = start_workers(module_processes, kit, argv, tmp, "worker")
    codes = kit.wait_all(workers, timeout=600)
    logs = [kit.log_text(tmp / f"worker{i}.log") for i in range(2)]
    assert codes == [0, 0], logs
    assert all("2 replica(s) in sync, 2 worker(s)" in log for log in logs)
    assert "saved to" in logs[0] and "saved to" not in logs[1]  # the chief alone writes
    return tmp / "run"


def scores(model, data, pairs=40):
    """`model.score` of some (user, movie) pairs through the export's feature store."""
    rng = np.random.default_rng(0)
    users = data.user_ids[rng.integers(0, data.num_users, pairs)].astype(bytes)
    items = data.item_ids[rng.integers(0, data.num_items, pairs)].astype(bytes)
    ids = {"user_id": tf.constant(users), "movie_id": tf.constant(items)}
    return ids, model.score(feature_store(data, "all", model.history_length).join(ids)).numpy()


def test_two_workers_train_like_one_process_and_the_chief_exports_a_servable(
    multi_worker_run, single_process_run, tmp_path
):
    got = json.loads((multi_worker_run / "run.json").read_text())
    expected = json.loads((single_process_run / "run.json").read_text())
    losses = got["history"]["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]  # the loss falls
    # The same global batches every epoch: equal up to the order floats are summed in.
    np.testing.assert_allclose(losses, expected["history"]["loss"], rtol=1e-3)
    for name in ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10", "full_mrr"):
        assert got["metrics"][name] == pytest.approx(expected["metrics"][name], abs=0.02), name

    assert cli.main(["export", "--model-dir", str(multi_worker_run), "--base-dir",
                     str(tmp_path / "serving"), "--name", "deepfm"]) == 0  # fmt: skip
    model, data, _ = workflow.load_run(multi_worker_run)
    ids, expected_scores = scores(model, data)
    serve = tf.saved_model.load(str(tmp_path / "serving" / "deepfm" / "1"))
    served = serve.signatures["serving_default"](**ids)["score"].numpy()
    np.testing.assert_allclose(served, expected_scores, atol=1e-5)


@pytest.mark.slow  # multi-worker training stays covered by the test above
def test_a_killed_worker_restarted_with_the_cluster_resumes_the_run(
    multi_worker_run, movielens_files, kit, processes, tmp_path
):
    output = tmp_path / "run"
    argv = kit.train_argv(movielens_files, output, batch_size=kit.GLOBAL_BATCH // 2,
                          extra=["--strategy", "multi_worker", "--save-freq", "2"])  # fmt: skip
    workers = start_workers(processes, kit, argv, tmp_path, "killed")
    kit.wait_for_backup(f"{output}.backup", kit.STEPS, workers[0], min_epoch=1)
    processes.kill(workers[1])  # SIGKILL, mid-epoch; worker 0 would fail on its next
    processes.kill(workers[0])  # all-reduce: stop it too, as a cluster manager restarts the job
    assert workers[1].returncode == -9 and not output.exists()

    restarted = start_workers(processes, kit, argv, tmp_path, "restarted")
    codes = kit.wait_all(restarted, timeout=600)
    logs = [kit.log_text(tmp_path / f"restarted{i}.log") for i in range(2)]
    assert codes == [0, 0], logs
    for log in logs:
        resumed = re.search(r"resuming from \S+: epoch (\d+), step (\d+)", log)
        assert resumed and resumed[1] == "2" and int(resumed[2]) > 0, log[-2000:]
    got = json.loads((output / "run.json").read_text())
    expected = json.loads((multi_worker_run / "run.json").read_text())
    assert len(got["history"]["loss"]) == 2 and got["metrics"]["epochs"] == 2
    for name, value in expected["metrics"].items():
        if name != "train_seconds":
            assert got["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert not Path(f"{output}.backup").exists()


# ------------------------------------------------------------------ parameter servers


def readme_recipe() -> str:
    text = README.read_text()
    section = text[
        text.index("<!-- cluster-recipe:start -->") : text.index("<!-- cluster-recipe:end -->")
    ]
    return re.search(r"```bash\n(.*?)```", section, re.S)[1]


def test_the_readme_parameter_server_recipe_trains_and_exports_a_servable(
    movielens_files, kit, processes, tmp_path
):
    recipe = readme_recipe()
    for old, port in zip(range(2222, 2227), kit.free_ports(5), strict=True):
        assert f"localhost:{old}" in recipe
        recipe = recipe.replace(f"localhost:{old}", f"localhost:{port}")
    # The test's data and a short run: appended to the README's own `tfrec train` line.
    extra = kit.train_argv(movielens_files, "unused")[2:-2] + ["--min-shard-bytes", "1024"]
    recipe, count = re.subn(r"(tfrec train deepfm [^\n]*)", lambda m: m[1] + " " + " ".join(
        f"'{a}'" for a in extra), recipe)  # fmt: skip
    assert count == 1
    bin_dir = tmp_path / "bin"  # `python` and `tfrec` of this checkout, as the README calls them
    bin_dir.mkdir()
    for name, command in (("python", ""), ("tfrec", " -m tfrec.cli")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    script = "set -e\n" + recipe
    log = tmp_path / "recipe.log"
    shell = processes.start(["bash", "-c", script], log, cwd=tmp_path, path=bin_dir)
    try:
        code = shell.wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(kit.log_text(log)[-3000:])
    out = kit.log_text(log)
    assert code == 0, out[-3000:]
    split = re.search(r"variables split across parameter servers: (.*)", out)
    assert split and re.search(r"user_tower/embedding\S*/embeddings -> 2 shards", split[1]), out

    run = tmp_path / "runs" / "deepfm-ps"
    history = json.loads((run / "run.json").read_text())["history"]
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    export = tmp_path / "saved_models" / "deepfm" / "1"
    model, data, _ = workflow.load_run(run)
    # The user table was split in two on the parameter servers; the export holds it whole.
    table = model.query_tower.fields[0].embedding.embeddings.numpy()
    saved = tf.train.load_checkpoint(str(export / "variables" / "variables"))
    shapes = saved.get_variable_to_shape_map()
    whole = [k for k, shape in shapes.items() if tuple(shape) == table.shape]
    assert any(np.array_equal(saved.get_tensor(k), table) for k in whole), sorted(shapes)
    ids, expected_scores = scores(model, data)
    served = tf.saved_model.load(str(export)).signatures["serving_default"](**ids)["score"]
    np.testing.assert_allclose(served.numpy(), expected_scores, atol=1e-5)

"""The production loop from the shell (tfrec/production.py behind `tfrec`), end to end on
generated MovieLens files: a run on the earliest half of the ratings, a warm start on all of
them (with and without replay), a held-out export judged through its signatures, two exports
compared, and every user's recommendations written to a file; plus the flag errors."""

import csv
import json

import numpy as np
import pytest

from tfrec import cli, production
from tfrec.data.synthetic import synthetic_tables, write_grouplens_100k

SMALL = ["--set", "embedding_dim=4", "--set", "dnn_units=[8]", "--set", "history_length=3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("production")
    tables = synthetic_tables(num_users=50, num_movies=70, ratings_per_user=10, seed=4)
    data = ["--data", str(write_grouplens_100k(tables, root / "ml"))]
    return root, [*data, "--data-dir", str(root / "cache"), "--split-by", "chronological"]


def test_warm_start_export_judge_compare_and_batch(files, capsys):
    root, data = files
    old, new, replayed = root / "old", root / "new", root / "replayed"
    base = root / "saved_models"
    train = ["train", "deepfm", *data, *SMALL, "--epochs", "1", "--batch-size", "128"]
    assert cli.main([*train, "--time-slice", "0.5", "--output", str(old)]) == 0
    previous = json.loads((old / "run.json").read_text())
    assert previous["data"]["time_slice"] == "0.5"
    assert previous["data"]["split_by"] == "chronological"

    warm = ["train", "--warm-start", str(old), *data, "--epochs", "1"]
    assert cli.main([*warm, "--set", "embedding_dim=8", "--output", str(new)]) == 2
    assert "keeps the previous run's hyperparameters" in capsys.readouterr().err
    assert cli.main([*warm, "--output", str(new)]) == 0
    out = capsys.readouterr().out
    assert "deepfm (warm start)" in out and "optimizer kept" in out
    meta = json.loads((new / "run.json").read_text())
    info = meta["warm_start"]
    assert meta["model"] == "deepfm" and meta["model_hparams"] == previous["model_hparams"]
    assert meta["train"] == {"epochs": 1, "batch_size": 128}
    assert info["optimizer_state"].startswith("kept") and info["new_ids"] > 0
    assert info["vocabularies"]["user_id"][1] > 0  # users the old run never saw
    assert 0.0 <= meta["metrics"]["full_hr@10"] <= 1.0

    assert cli.main([*warm, "--replay", "0.2", "--reset-optimizer", "--output", str(replayed)]) == 0
    info = json.loads((replayed / "run.json").read_text())["warm_start"]
    assert info["replay"] == 0.2 and info["optimizer_state"].startswith("reset")
    assert (
        info["training_rows"]
        < json.loads((new / "run.json").read_text())["warm_start"]["training_rows"]
    )

    for run, name in ((old, "old"), (new, "new")):
        argv = ["export", "--model-dir", str(run), "--base-dir", str(base), "--name", name]
        assert cli.main([*argv, "--as-of", "test"]) == 0
    capsys.readouterr()
    judge = ["--run", str(new), "--split", "test"]
    assert cli.main(["evaluate", "--export", str(base / "new"), *judge]) == 0
    out = capsys.readouterr().out
    judged = production.evaluate_export_job(base / "new", production.judged_data(run=new))
    assert f"{judged.metrics['full_hr@10']:.4f}" in out
    assert judged.metrics["full_hr@10"] == pytest.approx(meta["metrics"]["full_hr@10"], abs=0.02)

    argv = ["compare", "--export", str(base / "old"), "--export", str(base / "new"), *judge]
    assert cli.main([*argv, "--reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "paired bootstrap over users" in out and "95% CI low" in out
    assert "full_hr@10" in out and ("better" in out or "no difference" in out)

    output = root / "recs.csv"
    rec = ["recommend", "--all-users", "--k", "4", "--model", str(base / "new")]
    assert cli.main([*rec, "--output", str(output)]) == 0
    assert "users/s" in capsys.readouterr().out
    with open(output, newline="") as f:
        users = [row["user_id"] for row in csv.DictReader(f)]
    counts = np.unique(users, return_counts=True)[1]
    assert len(counts) == 50 and (counts == 4).all()


def test_production_flags_fail_with_a_fix(files, capsys, tmp_path):
    root, data = files
    cases = [
        (["train", "deepfm", *data, "--replay", "0.2"], "only apply with --warm-start"),
        (["train", "deepfm", "--data", "x", "--path", "y"], "--data is --source local"),
        (["compare", "--export", "a"], "compare takes two exports"),
        (["recommend", "--all-users"], "--output"),
        (["recommend", "--user", "1", "--all-users", "--output", "r.csv"], "exactly one"),
        (["evaluate", "--export", "a", *data, "--ks", "ten"], "--ks"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    missing = ["train", "--warm-start", str(tmp_path / "none"), *data]
    assert cli.main(missing) == 2
    assert "No trained run" in capsys.readouterr().err

"""The `tfrec` command end to end on tiny generated MovieLens files (no network)."""

import json

import pytest

from tfrec import cli
from tfrec.data.synthetic import synthetic_tables, write_grouplens_100k


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    files = write_grouplens_100k(
        synthetic_tables(num_users=40, num_movies=60, ratings_per_user=10, seed=3), root / "ml"
    )
    return ["--source", "local", "--path", str(files), "--data-dir", str(root / "cache")]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "train", "evaluate", "export", "recommend", "run"):
        assert command in out


def test_data_fetch_summarises(local_data, capsys):
    assert cli.main(["data", "fetch", *local_data]) == 0
    out = capsys.readouterr().out
    assert "40 users" in out and "60 movies" in out
    assert "(train / valid / test): " in out and "/ 40 / 40" in out


def test_train_evaluate_export_recommend(local_data, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"embedding_dim": 4, "dnn_units": [8], "batch_size": 128}))
    argv = ["train", "deepfm", *local_data, "--config", str(config), "--epochs", "1"]
    sets = ["--set", "dropout=0.1", "--set", "optimizer=lazy_adam"]
    assert cli.main([*argv, *sets, "--output", str(run)]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["model_hparams"] == {"embedding_dim": 4, "dnn_units": [8], "dropout": 0.1}
    assert meta["train"]["epochs"] == 1 and "full hr@10" in meta["metrics"]
    assert meta["train"]["optimizer"] == "lazy_adam"
    capsys.readouterr()

    assert cli.main(["evaluate", "--model-dir", str(run)]) == 0
    table = capsys.readouterr().out
    assert "deepfm" in table and "popularity" in table and "full hr@10" in table

    models = tmp_path / "saved_models"
    assert cli.main(["export", "--model-dir", str(run), "--base-dir", str(models)]) == 0
    assert (models / "deepfm" / "1" / "saved_model.pb").exists()
    capsys.readouterr()

    assert (
        cli.main(["recommend", "--model", str(models / "deepfm"), "--user", "1", "--k", "3"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Top 3 for user 1:" and len(lines) == 4
    assert "Movie " in lines[1]


def test_errors_are_short_and_name_the_problem(local_data, capsys, tmp_path):
    assert cli.main(["train", "nope", *local_data, "--output", str(tmp_path / "x")]) == 2
    assert "Received: model='nope'" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model-dir", str(tmp_path / "missing")]) == 2
    assert "tfrec train deepfm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "deepfm", "--set", "novalue"])

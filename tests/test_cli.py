"""The `tfrec` command: every subcommand wired, presets, `tfrec models`, and the train ->
evaluate -> export (as of test) -> recommend flow end to end on generated MovieLens files."""

import json
from pathlib import Path

import numpy as np
import pytest

from tfrec import cli, workflow
from tfrec.data.synthetic import synthetic_tables, write_grouplens_100k
from tfrec.models import PRESETS, TRAIN_DEFAULTS, available_models, model_defaults, preset

SUBCOMMANDS = {
    ("data", "fetch"): cli.cmd_data_fetch,
    ("data", "verify"): cli.cmd_data_verify,
    ("models",): cli.cmd_models,
    ("train", "deepfm"): cli.cmd_train,
    ("evaluate",): cli.cmd_evaluate,
    ("export",): cli.cmd_export,
    ("recommend", "--user", "196"): cli.cmd_recommend,
    ("run",): cli.cmd_run,
    ("compare", "--export", "a", "--export", "b"): cli.cmd_compare,
}
"""Minimal argv of each subcommand and the function it must run."""


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    files = write_grouplens_100k(
        synthetic_tables(num_users=40, num_movies=60, ratings_per_user=10, seed=3), root / "ml"
    )
    return ["--source", "local", "--path", str(files), "--data-dir", str(root / "cache")]


@pytest.mark.parametrize("argv", list(SUBCOMMANDS), ids=" ".join)
def test_every_subcommand_parses_to_its_function(argv):
    args = cli.build_parser().parse_args(list(argv))
    assert args.func is SUBCOMMANDS[argv]


def test_help_lists_every_subcommand(capsys):
    for argv, listed in (([], {name[0] for name in SUBCOMMANDS}), (["data"], {"fetch", "verify"})):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        choices = out[out.index("{") + 1 : out.index("}")].split(",")
        assert set(choices) == listed
        for name in listed:  # each one has its own help line
            assert any(line.strip().startswith(name + " ") for line in out.splitlines()), name


def test_parser_defaults_and_choices(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["export"]).as_of == "all"
    assert parser.parse_args(["export", "--as-of", "test"]).as_of == "test"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--as-of", "tomorrow"])
    assert "invalid choice: 'tomorrow'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["frobnicate"])


def test_models_lists_every_model_with_its_defaults_and_the_presets(capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {}
    for line in lines[1 : 1 + len(available_models())]:
        name, defaults = line.strip().split(": ", 1)
        listed[name] = json.loads(defaults)
    assert listed == {
        name: json.loads(json.dumps(model_defaults(name))) for name in available_models()
    }
    settings = next(line for line in lines if line.startswith("training settings"))
    assert json.loads(settings.split(": ", 1)[1]) == TRAIN_DEFAULTS
    presets = lines[lines.index("presets:") + 1 :]
    assert len(presets) == len(PRESETS)
    for line, (name, chosen) in zip(presets, PRESETS.items(), strict=True):
        label, model, settings = line.strip().split(" ", 2)
        assert (label, model) == (f"{name}:", chosen.model)
        assert json.loads(settings) == {**chosen.hparams, **chosen.train}


@pytest.fixture
def fake_train(monkeypatch):
    """Replaces the training job by a recorder: argument handling without training."""
    calls = []

    def record(name, source, model_hp, train_cfg, output, verbose="auto", **distribution):
        calls.append({"model": name, "hp": model_hp, "train": train_cfg, "output": output})
        return workflow.TrainResult(None, None, {"full_hr@10": 0.5}, {})

    monkeypatch.setattr(workflow, "train", record)
    return calls


def test_train_preset_sets_model_and_settings_and_flags_win(fake_train, local_data, capsys):
    argv = ["train", "--preset", "movielens-100k", *local_data, "--epochs", "2"]
    assert cli.main([*argv, "--set", "dropout=0.2", "--set", "patience=1"]) == 0
    chosen = preset("movielens-100k")
    (call,) = fake_train
    assert call["model"] == chosen.model == "deepfm"
    assert call["hp"] == {**chosen.hparams, "dropout": 0.2}
    assert call["train"] == {**chosen.train, "epochs": 2, "patience": 1}
    assert str(call["output"]) == "runs/deepfm"
    assert "full_hr@10" in capsys.readouterr().out
    # Naming the preset's own model is allowed.
    assert cli.main(["train", "deepfm", "--preset", "movielens-100k", *local_data]) == 0
    assert fake_train[1]["train"]["epochs"] == chosen.train["epochs"]


def test_train_preset_with_another_model_is_an_error(fake_train, local_data, capsys):
    assert cli.main(["train", "neumf", "--preset", "movielens-100k", *local_data]) == 2
    err = capsys.readouterr().err
    assert "Preset 'movielens-100k' trains 'deepfm'. Received: model='neumf'" in err
    assert cli.main(["train", "--preset", "nope", *local_data]) == 2
    assert "Received: preset='nope'" in capsys.readouterr().err
    assert cli.main(["train", *local_data]) == 2
    assert "--preset" in capsys.readouterr().err
    assert fake_train == []


def test_data_fetch_summarises(local_data, capsys):
    assert cli.main(["data", "fetch", *local_data]) == 0
    out = capsys.readouterr().out
    assert "40 users" in out and "60 movies" in out
    assert "(train / valid / test): " in out and "/ 40 / 40" in out


def test_train_evaluate_export_as_of_test_recommend(local_data, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"embedding_dim": 4, "dnn_units": [8], "batch_size": 128}))
    argv = ["train", "deepfm", *local_data, "--config", str(config), "--epochs", "1"]
    sets = ["--set", "dropout=0.1", "--set", "optimizer=lazy_adam", "--set", "history_length=5"]
    assert cli.main([*argv, *sets, "--output", str(run)]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["model_hparams"] == {
        "embedding_dim": 4,
        "dnn_units": [8],
        "dropout": 0.1,
        "history_length": 5,
    }
    assert meta["train"] == {"batch_size": 128, "optimizer": "lazy_adam", "epochs": 1}
    assert 0.0 <= meta["metrics"]["full_hr@10"] <= meta["metrics"]["sampled_hr@10"] <= 1.0
    assert "val_full_ndcg@10" in meta["history"]
    capsys.readouterr()

    assert cli.main(["evaluate", "--model-dir", str(run)]) == 0
    table = capsys.readouterr().out
    assert "deepfm" in table and "popularity" in table and "full_hr@10" in table

    models = tmp_path / "saved_models"
    export = ["export", "--model-dir", str(run), "--base-dir", str(models), "--as-of", "test"]
    assert cli.main(export) == 0
    assert (models / "deepfm" / "1" / "saved_model.pb").exists()
    capsys.readouterr()

    # As of test: each user's valid movie is seen (never returned), the test movie is not.
    _, data, _ = workflow.load_run(run)
    from tfrec.serving import load_recommender

    ids, _, _ = load_recommender(models / "deepfm")(data.user_ids, k=data.num_items)
    valid, test = data.split.valid, data.split.test
    assert not (ids[valid["user_index"]] == valid["movie_id"][:, None]).any()
    assert (ids[test["user_index"]] == test["movie_id"][:, None]).any(axis=1).all()
    np.testing.assert_array_equal(
        (ids != "").sum(axis=1), data.num_items - data.seen("test").counts(np.arange(40))
    )

    recommend = ["recommend", "--model", str(models / "deepfm"), "--user", "1", "--k", "3"]
    assert cli.main(recommend) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Top 3 for user 1:" and len(lines) == 4
    assert lines[1].startswith("  1. Movie ") and f"(movie {ids[0, 0]}," in lines[1]

    # k beyond the catalogue (once wrapped around in int32): clipped, said, only real rows.
    for k in ("100000", "4294967298"):
        assert cli.main([*recommend[:-1], k]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == (
            f"k={int(k):,} is more than the 60 movies in the catalogue: showing at most 60."
        )
        unseen = int((ids[0] != "").sum())
        assert lines[1] == f"Top {unseen} for user 1:" and len(lines) == unseen + 2
        assert all(line.strip() for line in lines)


def test_errors_are_short_and_name_the_problem(local_data, capsys, tmp_path):
    assert cli.main(["train", "nope", *local_data, "--output", str(tmp_path / "x")]) == 2
    assert "Received: model='nope'" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model-dir", str(tmp_path / "missing")]) == 1  # a failure
    assert "tfrec train deepfm" in capsys.readouterr().err
    assert cli.main(["train", "deepfm", "--set", "novalue"]) == 2
    assert "--set expects name=value" in capsys.readouterr().err
    assert cli.main(["train", "deepfm", "--config", str(tmp_path / "none.json")]) == 2
    assert "Config file not found" in capsys.readouterr().err


def _config(tmp_path, content: bytes) -> str:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    return str(path)


USAGE_ERRORS = {  # issue 14, finding 8: argv -> what the one-line message must say
    "--set of the wrong type": (
        ["--set", "dnn_units=oops"],
        "dnn_units must be a list of positive integers. Received: 'oops' (from --set). "
        "Fix: e.g. dnn_units=[400,400,400]",
    ),
    "--set list of non-positive": (
        ["--set", "dnn_units=[64,0]"],
        "dnn_units must be a list of positive integers. Received: [64, 0]",
    ),
    "--set bool for an int": (
        ["--set", "epochs=true"],
        "epochs must be an integer. Received: True",
    ),
    "--set string for a number": (["--set", "dropout=high"], "dropout must be a number"),
    "--set unknown name": (["--set", "dropuot=0.1"], "Unknown setting(s) ['dropuot']"),
    "--set without a name": (["--set", "=3"], "--set expects name=value"),
    "config not an object": (
        ["--config", b'[{"embedding_dim": 8}]'],
        "must hold a JSON object of settings",
    ),
    "config not UTF-8": (
        ["--config", b'{\n  "note": "caf\xe9"\n}'],
        "is not UTF-8 text: byte 0xe9 at line 2, column 15",
    ),
    "config not JSON": (["--config", b'{"epochs": 3,}'], "is not valid JSON"),
    "config with a bad value": (["--config", b'{"batch_size": "big"}'], "batch_size must be"),
    "unknown variant": (["--variant", "2m"], "Unknown --variant. Received: '2m'"),
    "local source without a path": (["--source", "local"], "--source local needs --path"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_exit_2_with_one_clear_line(case, fake_train, tmp_path, capsys):
    extra, expected = USAGE_ERRORS[case]
    extra = [_config(tmp_path, a) if isinstance(a, bytes) else a for a in extra]
    assert cli.main(["train", "deepfm", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfrec: error: ") and expected in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    if case.startswith("config"):
        assert str(tmp_path / "config.json") in err  # names the file
    assert fake_train == []  # nothing ran


@pytest.mark.parametrize(
    "argv",
    [
        ["recommend", "--user", "1", "--k", "-1"],
        ["recommend", "--user", "1", "--k", "true"],
        ["recommend", "--user", "1", "--k", "2.5"],
        ["train", "deepfm", "--epochs", "0"],
        ["train", "deepfm", "--bogus"],
        ["export", "--as-of", "tomorrow"],
    ],
    ids=" ".join,
)
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_a_bad_export_name_is_a_usage_error(capsys, tmp_path):
    assert cli.main(["export", "--model-dir", str(tmp_path), "--name", "a/b"]) == 2
    assert "--name: `name` must be letters" in capsys.readouterr().err


def test_failures_exit_1_with_a_clean_message(monkeypatch, local_data, tmp_path, capsys):
    import errno

    import tfrec.data
    from tfrec.data import FetchError

    def unreachable(*args, **kwargs):
        raise FetchError("Could not download ml-100k: connection refused. Fix: retry later.")

    monkeypatch.setattr(tfrec.data, "load_movielens", unreachable)
    assert cli.main(["data", "fetch"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "tfrec: error: Could not download ml-100k: connection refused. Fix: retry later.\n"
    )

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache"))

    monkeypatch.setattr(tfrec.data, "load_movielens", disk_full)
    assert cli.main(["data", "fetch"]) == 1
    err = capsys.readouterr().err
    assert err == f"tfrec: error: No space left on device: {tmp_path / 'cache'}\n"
    monkeypatch.undo()

    # A local source that does not exist, a missing run, a corrupt export.
    missing = ["--source", "local", "--path", str(tmp_path / "nowhere")]
    assert cli.main(["data", "fetch", *missing, "--data-dir", str(tmp_path / "c")]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert cli.main(["export", "--model-dir", str(tmp_path / "no-run")]) == 1
    assert "No trained run" in capsys.readouterr().err
    corrupt = tmp_path / "saved_models" / "deepfm" / "1"
    corrupt.mkdir(parents=True)
    (corrupt / "saved_model.pb").write_bytes(b"\x00not a protobuf")
    argv = ["recommend", "--user", "1", "--model", str(corrupt.parent)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tfrec: error: ") and "Traceback" not in err
    # --debug (before or after the subcommand) adds the traceback, same exit status.
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        assert cli.main(debug) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "tfrec: error: " in err


def test_data_verify_reports_entries_and_fails_on_a_same_size_edit(local_data, capsys):
    assert cli.main(["data", "fetch", *local_data]) == 0
    cache = local_data[local_data.index("--data-dir") + 1]
    capsys.readouterr()
    assert cli.main(["data", "verify", "--data-dir", cache]) == 0
    assert "100k" in capsys.readouterr().out
    ratings = next(p for p in Path(cache).rglob("*") if p.name in ("u.data", "ratings.npz"))
    data = bytearray(ratings.read_bytes())
    data[-2] = ord("9") if data[-2] != ord("9") else ord("8")  # same size, other content
    ratings.write_bytes(bytes(data))
    assert cli.main(["data", "verify", "--data-dir", cache]) == 1
    err = capsys.readouterr().err
    assert str(ratings.name) in err and "sha256" in err.lower()

"""Versioned, atomic exports and models.config."""

import tfrec  # noqa: F401  # isort: skip
from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfrec.serving import ServingModule, export_model, latest_export, next_version
from tfrec.serving import export as export_lib


@pytest.fixture
def untraced(monkeypatch):
    """Skips tracing the signatures: these tests fake tf.saved_model.save anyway."""
    monkeypatch.setattr(ServingModule, "signatures", lambda self: {})


def _listing(path):
    return sorted(p.name for p in path.iterdir())


def test_versions_are_integers_and_next_is_max_plus_one(exports):
    # deepfm already had version 3 (and a stale temp dir): the export became 4.
    assert exports.popular == exports.base / "deepfm" / "4"
    assert (exports.popular / "saved_model.pb").exists()
    # Only the stale dir that was there before: the export's own temp dir is gone.
    assert _listing(exports.base / "deepfm") == [".tmp-stale", "3", "4"]


def test_next_version_ignores_non_integer_names(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    for name in ("1", "7", "10", "x", ".tmp-99", "tmp-50"):
        (tmp_path / name).mkdir()
    (tmp_path / "200").write_text("a file, not a version")
    assert next_version(tmp_path) == 11


def test_latest_export_resolves_a_model_dir_to_its_highest_version(exports, tmp_path):
    assert latest_export(exports.base / "deepfm") == exports.popular
    assert latest_export(exports.popular) == exports.popular
    with pytest.raises(FileNotFoundError, match="No SavedModel"):
        latest_export(tmp_path)


def test_models_config_lists_every_model_dir(exports):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((exports.base / "models.config").read_text(), config)
    entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
    assert entries == [
        ("deepfm", "/models/deepfm", "tensorflow"),
        ("other", "/models/other", "tensorflow"),
    ]
    assert not [p for p in exports.base.iterdir() if p.name.startswith(".tmp-")]


def test_models_config_serving_root_and_skips_dirs_without_versions(tmp_path):
    (tmp_path / "a" / "2").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    export_lib.write_models_config(tmp_path, serving_root="/srv/models/")
    text = (tmp_path / "models.config").read_text()
    assert 'name: "a"' in text and 'base_path: "/srv/models/a"' in text
    assert "empty" not in text and "hidden" not in text
    assert _listing(tmp_path) == [".hidden", "a", "empty", "models.config"]


def test_failure_mid_write_leaves_no_version(
    model, store, movielens, tmp_path, monkeypatch, untraced
):
    (tmp_path / "deepfm" / "2").mkdir(parents=True)
    staged = []

    def crash_mid_write(module, directory, signatures):
        Path(directory, "saved_model.pb").write_bytes(b"partial")
        staged.append(directory)
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash_mid_write)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(model, store, movielens.seen, base_dir=tmp_path, name="deepfm")
    assert staged and "/.tmp-" in staged[0]  # it was writing to a hidden temp dir
    assert _listing(tmp_path / "deepfm") == ["2"]
    assert not (tmp_path / "models.config").exists()


def test_failure_after_the_savedmodel_keeps_the_next_number_free(
    model, store, movielens, tmp_path, monkeypatch, untraced
):
    def fail(directory, logs):
        raise RuntimeError("warmup failed")

    monkeypatch.setattr(export_lib, "write_warmup", fail)
    monkeypatch.setattr(
        tf.saved_model,
        "save",
        lambda module, d, signatures: (tmp_path / d / "saved_model.pb").touch(),
    )
    with pytest.raises(RuntimeError, match="warmup failed"):
        export_model(model, store, movielens.seen, base_dir=tmp_path, name="m")
    assert _listing(tmp_path) == []
    path = export_model(model, store, movielens.seen, base_dir=tmp_path, name="m", warmup=False)
    assert path == tmp_path / "m" / "1" and _listing(path) == ["saved_model.pb"]
    assert 'name: "m"' in (tmp_path / "models.config").read_text()


def test_failure_in_a_new_model_dir_removes_it(
    model, store, movielens, tmp_path, monkeypatch, untraced
):
    def fail(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="no space"):
        export_model(model, store, movielens.seen, base_dir=tmp_path, name="fresh")
    assert _listing(tmp_path) == []


def test_bad_model_names_are_rejected(model, store, movielens, tmp_path):
    for name in ("", ".hidden", "a/b", "12 monkeys"):
        with pytest.raises(ValueError, match="name="):
            export_model(model, store, movielens.seen, base_dir=tmp_path, name=name)
    assert _listing(tmp_path) == []

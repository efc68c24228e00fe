"""models.config with version labels: parsed back as TF Serving parses it, written atomically."""

from __future__ import annotations

import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfrec.experiments import routing
from tfrec.experiments.routing import (
    version_labels_config,
    write_canary_config,
    write_version_labels,
)

EXISTING = """
model_config_list {
  config { name: "deepfm" base_path: "/srv/deepfm" model_platform: "tensorflow" }
  config { name: "other" base_path: "/models/other" model_platform: "tensorflow" }
}
"""


def _parse(text):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return {c.name: c for c in config.model_config_list.config}


def test_canary_config_pins_both_versions_and_labels_them(tmp_path):
    path = write_canary_config(tmp_path / "models.config", "deepfm", stable=1, canary=2)
    entry = _parse(path.read_text())["deepfm"]
    assert entry.base_path == "/models/deepfm" and entry.model_platform == "tensorflow"
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    assert "version_labels" in path.read_text() and "specific" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_existing_models_are_kept_and_the_entry_keeps_its_base_path():
    entries = _parse(version_labels_config("deepfm", {"stable": 3, "canary": 5}, existing=EXISTING))
    assert set(entries) == {"deepfm", "other"}
    assert entries["deepfm"].base_path == "/srv/deepfm"
    assert dict(entries["deepfm"].version_labels) == {"stable": 3, "canary": 5}
    assert not entries["other"].version_labels
    assert not entries["other"].HasField("model_version_policy")


def test_two_step_rollout_serves_the_canary_before_labelling_it(tmp_path):
    path = tmp_path / "models.config"
    write_version_labels(path, "deepfm", {"stable": 1}, versions=[2])
    entry = _parse(path.read_text())["deepfm"]
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1}
    write_canary_config(path, "deepfm", 1, 2)
    entry = _parse(path.read_text())["deepfm"]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    # Promotion: the canary becomes stable, the old version is unloaded.
    write_version_labels(path, "deepfm", {"stable": 2})
    entry = _parse(path.read_text())["deepfm"]
    assert list(entry.model_version_policy.specific.versions) == [2]
    assert dict(entry.version_labels) == {"stable": 2}
    assert len(_parse(path.read_text())) == 1


def test_versions_must_exist_in_the_model_dir(tmp_path):
    (tmp_path / "deepfm" / "1").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"Versions \[2\]"):
        write_canary_config(
            tmp_path / "models.config", "deepfm", 1, 2, model_dir=tmp_path / "deepfm"
        )
    assert not (tmp_path / "models.config").exists()
    (tmp_path / "deepfm" / "2").mkdir()
    write_canary_config(tmp_path / "models.config", "deepfm", 1, 2, model_dir=tmp_path / "deepfm")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = write_canary_config(tmp_path / "models.config", "deepfm", 1, 2)
    before = path.read_text()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(routing.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_canary_config(path, "deepfm", 2, 3)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["models.config"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: version_labels_config("deep fm", {"stable": 1}), "name='deep fm'"),
        (lambda: version_labels_config("deepfm", {}), "labels=\\{\\}"),
        (lambda: version_labels_config("deepfm", {"2": 1}), "label='2'"),
        (lambda: version_labels_config("deepfm", {"stable": 0}), "Received: 0"),
        (lambda: version_labels_config("deepfm", {"stable": True}), "Received: True"),
        (lambda: version_labels_config("deepfm", {"a": 1}, versions=[-1]), "Received: -1"),
        (lambda: version_labels_config("deepfm", {"a": 1}, existing="nonsense {"), "existing"),
        (lambda: write_canary_config("x.config", "deepfm", 2, 2), "stable=2, canary=2"),
    ],
)
def test_bad_input_names_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call()

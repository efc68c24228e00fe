"""TF Serving routing for an A/B test: two versions of one model behind version labels.

During a test the server keeps both the live model and the candidate loaded, and clients
choose between them by label rather than by number, so promoting or rolling back is a config
change, not a client release. The ``models.config`` (text ``ModelServerConfig``) entry for the
model pins the versions with ``model_version_policy { specific { versions: ... } }`` and names
them with ``version_labels { key: "stable" value: 1 }``, ``{ key: "canary" value: 2 }``.

How clients pick a label (the application maps each user's variant from
`tfrec.experiments.assignment.Assignment` to a label):

* REST: ``POST http://host:8501/v1/models/deepfm/labels/canary:predict`` (``.../labels/stable``
  for the control), with the usual body, e.g. ``{"signature_name": "recommend", ...}``.
* gRPC: ``request.model_spec.name = "deepfm"`` and
  ``request.model_spec.version_label = "canary"``.

TF Serving only accepts a label for a version that is already loaded (AVAILABLE); a config
that labels a version still loading is rejected unless the server runs with
``--allow_version_labels_for_unavailable_models``. Roll out in two steps: serve both versions
with only ``stable`` labelled (``write_version_labels(path, "deepfm", {"stable": 1},
versions=[1, 2])``), wait until ``GET /v1/models/deepfm`` reports version 2 AVAILABLE, then add
``canary`` (`write_canary_config`). The server re-reads the file every
``--model_config_file_poll_wait_seconds``. `tfrec.serving.export_model` rewrites
``models.config`` without labels after each export: re-apply the labels afterwards, or give the
server a separate config file.
"""

from __future__ import annotations

import os
import pathlib
import re
import tempfile
from collections.abc import Iterable, Mapping

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def version_labels_config(
    name: str,
    labels: Mapping[str, int],
    *,
    versions: Iterable[int] = (),
    existing: str | None = None,
    base_path: str | None = None,
    serving_root: str = "/models",
) -> str:
    """A ``ModelServerConfig`` text serving `name` at pinned versions with `labels`.

    Args:
      name: The model's name on the server (its directory under the serving root).
      labels: ``{label: version}``, e.g. ``{"stable": 1, "canary": 2}``.
      versions: Extra versions to keep loaded without a label (see the two-step rollout in
        the module docstring). The served versions are these plus the labelled ones.
      existing: A current ``models.config`` text: its other models are kept as they are, and
        the entry for `name` keeps its base path and platform.
      base_path: Where the server finds the model's versions (default
        ``<serving_root>/<name>``); only used when `existing` has no entry for `name`.
      serving_root: Where the models directory is mounted inside the server.
    """
    _check_name(name)
    labels = _check_labels(labels)
    served = sorted(set(labels.values()) | {_check_version("versions", v) for v in versions})
    config = model_server_config_pb2.ModelServerConfig()
    if existing:
        try:
            text_format.Parse(existing, config)
        except text_format.ParseError as error:
            raise ValueError(
                f"`existing` is not a ModelServerConfig text proto ({error}). Fix: pass the "
                "contents of a models.config file, or None to start a new one."
            ) from error
    entry = next((c for c in config.model_config_list.config if c.name == name), None)
    if entry is None:
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = base_path or f"{serving_root.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.versions.extend(served)
    entry.version_labels.clear()
    for label, version in labels.items():
        entry.version_labels[label] = version
    return text_format.MessageToString(config)


def write_version_labels(
    config_path,
    name: str,
    labels: Mapping[str, int],
    *,
    versions: Iterable[int] = (),
    model_dir=None,
    base_path: str | None = None,
    serving_root: str = "/models",
) -> pathlib.Path:
    """Updates (or creates) the ``models.config`` at `config_path` atomically.

    The new text is written to a temporary file beside it and renamed over it, so a server
    polling the file never reads half of it. When `model_dir` (the local ``<base>/<name>``
    directory) is given, every served version must exist there as an integer directory.
    Other arguments as in `version_labels_config`.
    """
    config_path = pathlib.Path(config_path)
    versions = list(versions)
    if model_dir is not None:
        wanted = set(_check_labels(labels).values()) | set(versions)
        missing = sorted(v for v in wanted if not (pathlib.Path(model_dir) / str(v)).is_dir())
        if missing:
            raise FileNotFoundError(
                f"Versions {missing} of {name!r} are not in {model_dir}: TF Serving could not "
                f"load them. Received: labels={dict(labels)!r}, versions={versions!r}. Fix: "
                "export them first, or label versions that exist."
            )
    existing = config_path.read_text() if config_path.exists() else None
    text = version_labels_config(
        name,
        labels,
        versions=versions,
        existing=existing,
        base_path=base_path,
        serving_root=serving_root,
    )
    config_path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".tmp-", suffix=".config", dir=config_path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(partial, 0o644)
        os.replace(partial, config_path)
    except BaseException:
        pathlib.Path(partial).unlink(missing_ok=True)
        raise
    return config_path


def write_canary_config(config_path, name: str, stable: int, canary: int, **kwargs):
    """Serves versions `stable` and `canary` of `name` under the labels of the same names.

    Both versions must already be loaded by the server (or the server must run with
    ``--allow_version_labels_for_unavailable_models``); keyword arguments go to
    `write_version_labels`.
    """
    if stable == canary:
        raise ValueError(
            "The stable and canary versions must differ for an A/B test. "
            f"Received: stable={stable!r}, canary={canary!r}"
        )
    return write_version_labels(config_path, name, {"stable": stable, "canary": canary}, **kwargs)


def _check_name(name) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "`name` must be letters, digits, '_' or '-', not starting with '_' or '-' (TF "
            f"Serving's model name). Received: name={name!r}"
        )


def _check_version(field, version) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`{field}` must hold positive integer versions. Received: {version!r}")
    return version


def _check_labels(labels) -> dict[str, int]:
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError(
            f"`labels` must map label names to versions, e.g. {{'stable': 1, 'canary': 2}}. "
            f"Received: labels={labels!r}"
        )
    for label in labels:
        if not isinstance(label, str) or not _NAME.match(label) or label.isdigit():
            raise ValueError(
                "Labels must be letters, digits, '_' or '-' and not a number (they appear in "
                f"REST paths next to version numbers). Received: label={label!r}"
            )
    return {label: _check_version("labels", v) for label, v in labels.items()}

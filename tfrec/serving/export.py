"""Versioned, atomic SavedModel exports laid out the way TF Serving watches them.

TF Serving polls ``<base_path>/<model>/`` and loads the highest integer-named version
directory it finds, possibly while the directory is still being written. `export_model`
therefore writes each version into a hidden temporary directory next to the versions (a
name TF Serving ignores) and renames it to ``<max existing + 1>`` only once the SavedModel
and its warmup requests are complete; on any error nothing is left behind, and the staging
folders of exports that were killed (``.tmp-<pid>-*``, their process gone, older than an hour)
are removed by the next export (`tfrec._staging`). It then rewrites ``<base_dir>/models.config``, the ``model_config_list`` that serves every exported model from
one server (``--model_config_file``).
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import shutil
import tempfile

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfrec._staging import clean_stale, staging_prefix
from tfrec.data.splitdata import SplitData
from tfrec.features.inputs import feature_store
from tfrec.serving.catalogue import build_catalogue
from tfrec.serving.module import RecommenderModule
from tfrec.serving.warmup import warmup_logs, write_warmup

MODELS_CONFIG = "models.config"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_VERSION = re.compile(r"[0-9]+")


def versions(model_dir) -> list[int]:
    """Integer versions present in a model directory, ascending (what TF Serving would see)."""
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = [p.name for p in model_dir.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
    return sorted(int(name) for name in found)


def next_version(model_dir) -> int:
    """The version the next export gets: the largest existing version plus one (1 if none)."""
    existing = versions(model_dir)
    return existing[-1] + 1 if existing else 1


def latest_export(path) -> pathlib.Path:
    """A SavedModel directory: `path` itself, or the highest version inside a model directory."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").exists():
        return path
    existing = versions(path)
    if not existing:
        raise FileNotFoundError(
            f"No SavedModel at {path}: it has no saved_model.pb and no integer version "
            "directories. Fix: pass a directory written by export_model (e.g. "
            "saved_models/deepfm or saved_models/deepfm/1)."
        )
    return path / str(existing[-1])


def model_names(base_dir) -> list[str]:
    """Model directories under `base_dir` that hold at least one version, sorted."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(
        p.name for p in base_dir.iterdir() if p.is_dir() and _NAME.fullmatch(p.name) and versions(p)
    )


def models_config_text(base_dir, serving_root: str = "/models") -> str:
    """TF Serving's ``model_config_list`` text proto for every model under `base_dir`.

    `serving_root` is where `base_dir` is mounted inside the server (``-v ...:/models``).
    """
    config = model_server_config_pb2.ModelServerConfig()
    for name in model_names(base_dir):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{serving_root.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
    return text_format.MessageToString(config)


def write_models_config(base_dir, serving_root: str = "/models") -> pathlib.Path:
    """(Re)writes ``<base_dir>/models.config`` atomically (temp file, then os.replace)."""
    base_dir = pathlib.Path(base_dir)
    text = models_config_text(base_dir, serving_root)
    fd, partial = tempfile.mkstemp(prefix=staging_prefix(), suffix=".config", dir=base_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(partial, 0o644)
        os.replace(partial, base_dir / MODELS_CONFIG)
    except BaseException:
        pathlib.Path(partial).unlink(missing_ok=True)
        raise
    return base_dir / MODELS_CONFIG


def check_name(name) -> None:
    """Raises ValueError unless `name` is a valid model directory and TF Serving model name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            "`name` must be letters, digits, '_' or '-', not starting with '_' or '-' "
            f"(it is a directory and TF Serving's model name). Received: name={name!r}"
        )


def _publish(staging: pathlib.Path, model_dir: pathlib.Path) -> pathlib.Path:
    """Renames the finished staging directory to the next free version number."""
    for _ in range(100):
        target = model_dir / str(next_version(model_dir))
        if target.exists():
            continue
        try:
            os.rename(staging, target)
            return target
        except OSError as error:  # another export took the number meanwhile
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    raise RuntimeError(f"Could not find a free version number in {model_dir}.")


def recommender_module(model, data: SplitData, as_of: str = "all", cold_start="popular"):
    """The `RecommenderModule` of `model` with everything known at `as_of` in `data`.

    ``as_of="all"`` (serving) treats every rating as seen (never recommended again) and as
    history; ``as_of="test"`` (a held-out export) knows only train and valid, exactly as the
    library's test-split evaluation does, so the servable itself can be judged on test.
    """
    store = feature_store(data, as_of, model.history_length)
    known = data.known(as_of)
    catalogue = build_catalogue(
        store,
        seen=(known["user_id"], known["movie_id"]),
        movie_titles=data.items.get("movie_title"),
        popularity=data.item_counts(as_of),
    )
    module = RecommenderModule(model, store, catalogue, cold_start)
    # Saved with it, so a judge can tell which split the export may be evaluated on.
    module.as_of = tf.Variable(as_of, trainable=False, name="as_of")
    return module


def export_model(
    model,
    data: SplitData,
    as_of: str = "all",
    base_dir="saved_models",
    name: str = "deepfm",
    cold_start: str = "popular",
    warmup: bool = True,
    serving_root: str = "/models",
) -> pathlib.Path:
    """Exports `model` as the next version of ``<base_dir>/<name>`` for TF Serving.

    The SavedModel holds the model's state, the feature store (side features and each user's
    history as of `as_of`), the encoded catalogue and the seen items, with signatures
    ``serving_default``, ``score_features`` and ``recommend`` (see `tfrec.serving.module`).

    Args:
      model: A trained `tfrec.models.Recommender`.
      data: The `SplitData` it was trained on.
      as_of: What the export knows: "all" (every rating; for serving) or "test" / "valid"
        (a held-out export whose `recommend` can be judged on that split).
      base_dir: Directory mounted as the server's model root.
      name: Model name (the directory and TF Serving's model name).
      cold_start: "popular" or "average_user": what `recommend` does for unknown users.
      warmup: Write ``assets.extra/tf_serving_warmup_requests`` (one request per signature).
      serving_root: Where `base_dir` is mounted inside the server, for models.config.

    Returns:
      The new version directory, e.g. ``saved_models/deepfm/3``.
    """
    check_name(name)
    module = recommender_module(model, data, as_of, cold_start)
    return export_module(module, base_dir, name, warmup, serving_root)


def export_module(
    module, base_dir="saved_models", name: str = "deepfm", warmup=True, serving_root="/models"
) -> pathlib.Path:
    """Saves a servable `tf.Module` as the next version of ``<base_dir>/<name>``.

    Shared by `export_model` and `tfrec.pipeline.export_pipeline`: `module` (a
    `tfrec.serving.catalogue.CatalogueModule`) provides
    ``signatures()`` and ``example_inputs()``. The SavedModel (plus warmup requests) is written
    to a hidden temporary directory, renamed to its integer version only when complete, and
    ``<base_dir>/models.config`` is then rewritten. Returns the version directory.
    """
    check_name(name)
    base_dir = pathlib.Path(base_dir)
    model_dir = base_dir / name
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(base_dir)  # models.config temp files of killed exports
    clean_stale(model_dir)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=model_dir))
    try:
        os.chmod(staging, 0o755)
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        if warmup:
            write_warmup(staging, warmup_logs(module.example_inputs(), name))
        version_dir = _publish(staging, model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(model_dir.iterdir()):
            model_dir.rmdir()
        raise
    write_models_config(base_dir, serving_root)
    return version_dir

"""End-to-end jobs behind the CLI: train a registered model, evaluate it, export it, recommend.

A *run directory* holds what a later command needs, in a form that loads without running any
code from it: ``model.json`` (the model's Keras config; only tfrec's registered classes and
Keras' built-in preprocessing, embedding and dense layers are accepted), ``weights/`` (a
TensorFlow checkpoint: tensors only) and ``run.json`` (model name, data variant and source,
hyperparameters, training settings, metrics, history). The data split is recomputed from the
variant, deterministically, instead of being stored. Run directories are replaced atomically;
staging folders of killed runs (``.tmp-<pid>-*`` next to the run, their process gone) are
removed by the next `save_run` into the same parent directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec._staging import clean_stale, staging_prefix
from tfrec.baselines import Popularity
from tfrec.data import SplitData, chronological_split, load_movielens
from tfrec.data import time_slice as slice_in_time
from tfrec.evaluation import evaluate, evaluate_model, format_table
from tfrec.features.inputs import ModelInputs
from tfrec.models import TRAIN_DEFAULTS, build_model, preset
from tfrec.training import fit, is_chief, ordinary_copy
from tfrec.training.distribute import resolve_strategy

RUN_PRESET = "movielens-100k"
"""The preset `make run` trains (see `tfrec.models.PRESETS`)."""

SAFE_KERAS_CLASSES = frozenset(
    {"StringLookup", "Hashing", "Discretization", "Embedding", "Dense", "BatchNormalization",
     "Activation", "Dropout"}
)  # fmt: skip
"""Keras classes a run directory's model config may name besides tfrec's own."""


@dataclass
class TrainResult:
    """A trained model with the data it was trained on, its metrics and Keras history."""

    model: tf.keras.Model
    data: SplitData
    metrics: dict
    history: dict


SPLITS = ("leave-one-out", "chronological")
"""How `load_data` splits ratings: per user, last -> test and second-last -> valid; or by time,
the earliest 80% train, then 10% valid and the latest 10% test (later users and movies new)."""


def load_data(variant="100k", source="auto", data_dir=None, path=None, time_slice=None,
              split_by=None) -> SplitData:  # fmt: skip
    """MovieLens `variant` split leave-one-out (or chronologically: ``split_by``), optionally
    only its earliest `time_slice` share of ratings (`tfrec.data.time_slice`)."""
    ml = load_movielens(variant, source=source, data_dir=data_dir, path=path)
    if time_slice is not None:
        ml = slice_in_time(ml, float(time_slice))
    split_by = split_by or "leave-one-out"
    if split_by not in SPLITS:
        raise ValueError(f"Unknown split. Received: split_by={split_by!r}. Fix: one of {SPLITS}.")
    split = chronological_split(ml.ratings) if split_by == "chronological" else None
    return SplitData.from_movielens(ml, split)


def train_model(name, data: SplitData, model_hp: dict, train_cfg: dict, verbose="auto",
                strategy=None, backup_dir=None, save_freq="epoch"):  # fmt: skip
    """Builds model `name` adapted to the training rows (under `strategy`'s scope: a
    `tf.distribute.Strategy` or a name of `tfrec.training.STRATEGIES`), fits it (resumably,
    with a `backup_dir`), and evaluates it on test. The result holds an ordinary copy of the
    model (every worker of a cluster makes it; see `tfrec.training.ordinary_copy`)."""
    strategy = resolve_strategy(strategy)
    start = time.perf_counter()
    history = fit(
        lambda: build_model(name, data, **model_hp), data, verbose=verbose, strategy=strategy,
        backup_dir=backup_dir, save_freq=save_freq, **train_cfg,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model = ordinary_copy(history.model, _one_row(history.model, data))
    metrics = evaluate_model(model, data, "test")
    metrics["epochs"] = len(history.history.get("loss", []))
    metrics["train_seconds"] = round(seconds, 1)
    logs = {k: [float(x) for x in v] for k, v in history.history.items()}
    return TrainResult(model, data, metrics, logs)


def _one_row(model, data: SplitData) -> dict:
    """One batch of `model`'s inputs (builds a model's weights)."""
    inputs = ModelInputs.build(model, data, "test")
    return inputs.gather(tf.constant([0]), tf.constant([0]))


def baseline_metrics(data: SplitData, split="test") -> dict:
    """Leave-one-out metrics of the popularity baseline, for context next to any model."""
    known = data.known(split)
    pop = Popularity().fit(
        known["user_index"], known["movie_index"], data.num_users, data.num_items
    )
    users, targets = data.targets(split)
    return evaluate(pop.score_fn, users, targets, data.num_items, data.seen(split))


HEADLINE = ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10", "full_mrr")


def format_results(rows: dict) -> str:
    """A table of the headline metrics (both protocols) for each named row."""
    return format_table({name: {c: m[c] for c in HEADLINE if c in m} for name, m in rows.items()})


# ---------------------------------------------------------------------- run directories


def _swap_in(staging: Path, output: Path) -> None:
    """Replaces `output` by `staging` so that one of them always exists whole."""
    old = output.parent / f".old-{output.name}"
    if output.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(output, old)
    try:
        os.replace(staging, output)
    except BaseException:  # put the previous run back (a crash here: see recover_run)
        recover_run(output)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_run(output: Path) -> None:
    """Puts back a run that a crash left renamed aside in the middle of `_swap_in`."""
    output = Path(output)
    old = output.parent / f".old-{output.name}"
    if old.exists() and not output.exists():
        os.replace(old, output)


def save_run(result: TrainResult, output: Path, name, source: dict, model_hp, train_cfg,
             extra: dict | None = None) -> None:  # fmt: skip
    """Writes the run directory into a temporary sibling, then swaps it in atomically
    (`extra`: more run.json entries, e.g. how a warm start began)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    recover_run(output)
    clean_stale(output.parent)
    staging = output.parent / f"{staging_prefix()}{output.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        save_model(result.model, staging)
        meta = {
            "model": name,
            "data": {k: (str(v) if v is not None else None) for k, v in source.items()},
            "model_hparams": model_hp,
            "train": train_cfg,
            "metrics": result.metrics,
            "history": result.history,
            **(extra or {}),
        }
        (staging / "run.json").write_text(json.dumps(meta, indent=2, default=_jsonable))
        _swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | np.ndarray):
        return list(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def save_model(model, directory: Path) -> None:
    """Writes ``model.json`` (the Keras config) and ``weights/`` (a checkpoint) into `directory`."""
    directory = Path(directory)
    config = tf.keras.layers.serialize(model)
    for key in ("compile_config", "build_config"):  # rebuilt on load, never trusted
        config.pop(key, None)
    (directory / "model.json").write_text(json.dumps(config, default=_jsonable))
    model.save_weights(str(directory / "weights" / "model"))


def load_model(directory: Path, data: SplitData):
    """The model `save_model` wrote, rebuilt from trusted classes only, with its weights."""
    path = Path(directory) / "model.json"
    if not path.exists():
        raise FileNotFoundError(f"No model.json in {directory}. Fix: save it with save_model.")
    config = json.loads(path.read_text())
    check_config(config, str(path))
    model = tf.keras.layers.deserialize(config)
    model(_one_row(model, data), training=False)
    model.load_weights(str(Path(directory) / "weights" / "model")).expect_partial()
    return model


def _trusted(config: dict) -> bool:
    """Whether Keras would deserialize `config` as a tfrec class or an allowlisted built-in.

    Keras resolves ``registered_name`` first, then a built-in by ``class_name``, then any class
    of any importable ``module``: a "tfrec>" prefix alone proves nothing (``{"class_name":
    "Lambda", "registered_name": "tfrec>Lambda"}`` deserializes Keras' Lambda), so a
    registered name must resolve to a class defined in tfrec.
    """
    registered = config.get("registered_name")
    if registered is not None:
        cls = tf.keras.utils.get_registered_object(str(registered))
        return str(registered).startswith("tfrec>") and (
            getattr(cls, "__module__", "").split(".")[0] == "tfrec"
        )
    module = str(config.get("module", ""))
    return module.startswith("keras.") and config["class_name"] in SAFE_KERAS_CLASSES


def check_config(config, where="model.json") -> None:
    """Raises ValueError if a serialized model names a class tfrec does not trust to load."""
    if isinstance(config, dict):
        name = config.get("class_name")
        if isinstance(name, str) and "config" in config:
            if not _trusted(config):
                raise ValueError(
                    f"{where} names the class {name!r}, which a tfrec run directory never "
                    "contains (only tfrec models and Keras' built-in layers are loaded; a "
                    "Lambda or custom layer could run code). Fix: train the run with "
                    "`tfrec train`, and only load run directories you trust."
                )
        for value in config.values():
            check_config(value, where)
    elif isinstance(config, list):
        for value in config:
            check_config(value, where)


def read_run(run_dir) -> dict:
    """The run.json of a run directory written by `tfrec train` (a clear error if none)."""
    run_dir = Path(run_dir)
    recover_run(run_dir)
    path = run_dir / "run.json"
    if not path.exists() or not (run_dir / "model.json").exists():
        raise FileNotFoundError(
            f"No trained run at {run_dir} (missing run.json or model.json). Fix: "
            f"`tfrec train deepfm --output {run_dir}`."
        )
    return json.loads(path.read_text())


def load_run(run_dir: Path):
    """(model, SplitData, run metadata) of a run directory written by `tfrec train`."""
    meta = read_run(run_dir)
    data = load_data(**meta["data"])
    return load_model(run_dir, data), data, meta


def train(name, source: dict, model_hp, train_cfg, output: Path, verbose="auto", strategy=None,
          backup_dir=None, save_freq="epoch") -> TrainResult:  # fmt: skip
    """`tfrec train`: train `name` on the data `source` describes (variant, source, data_dir,
    path: the arguments of `load_movielens`) and save the run directory `output`.

    Under a strategy every worker of the cluster runs this; only the chief writes `output`.
    With `backup_dir`, a killed run rerun with the same arguments resumes (`tfrec.training.fit`).
    """
    data = load_data(**source)
    strategy = resolve_strategy(strategy)
    result = train_model(name, data, model_hp, train_cfg, verbose=verbose, strategy=strategy,
                         backup_dir=backup_dir, save_freq=save_freq)  # fmt: skip
    if is_chief(strategy):
        save_run(result, output, name, source, model_hp, train_cfg)
    return result


def evaluate_run(run_dir: Path, with_baseline=True) -> dict:
    """`tfrec evaluate`: test metrics of a saved run, next to popularity."""
    model, data, meta = load_run(run_dir)
    rows = {meta["model"]: evaluate_model(model, data, "test")}
    if with_baseline:
        rows["popularity"] = baseline_metrics(data)
    return rows


def export_trained(model, data: SplitData, base_dir: Path, name: str, as_of="all") -> Path:
    """Exports for TF Serving; with ``as_of="all"`` every rating counts as seen (never
    recommended again) and as history, and popularity drives cold start."""
    from tfrec.serving import export_model

    return export_model(model, data, as_of=as_of, base_dir=base_dir, name=name)


def export_run(run_dir: Path, base_dir: Path, name: str | None = None, as_of="all") -> Path:
    """`tfrec export`: the run's model as `base_dir/<name>/<next version>/`."""
    model, data, meta = load_run(run_dir)
    return export_trained(model, data, Path(base_dir), name or meta["model"], as_of)


def recommend_lines(model_path: Path, user: str, k: int) -> list[str]:
    """`tfrec recommend`: printable top-k lines from an exported SavedModel.

    A `k` beyond the catalogue is clipped to its size, with a line saying so; only real rows
    are printed (slots beyond the user's unseen movies come back empty and are skipped).
    """
    from tfrec.serving import load_recommender

    recommend = load_recommender(model_path)
    lines = []
    if k > recommend.catalogue_size:
        lines.append(
            f"k={k:,} is more than the {recommend.catalogue_size:,} movies in the catalogue: "
            f"showing at most {recommend.catalogue_size:,}."
        )
    ids, scores, titles = recommend([str(user)], k)
    found = ids[0] != ""
    lines.append(f"Top {int(found.sum())} for user {user}:")
    rows = zip(ids[0][found], scores[0][found], titles[0][found], strict=True)
    for rank, (movie, score, title) in enumerate(rows, 1):
        lines.append(f"{rank:3d}. {title}  (movie {movie}, score {float(score):.3f})")
    return lines


def main_job(epochs=None, base_dir=Path("saved_models"), user="196", variant="100k") -> dict:
    """`make run`: data, the `RUN_PRESET` model with early stopping, both protocols next to
    popularity, export for TF Serving, and top-10 titles for one user."""
    chosen = preset(RUN_PRESET)
    data = load_data(variant)
    ml = data.movielens
    print(
        f"MovieLens {ml.variant} (source: {ml.source_description}): {ml.num_users:,} users, "
        f"{ml.num_movies:,} movies, {ml.num_ratings:,} ratings"
    )
    sizes = " / ".join(f"{len(part['user_index']):,}" for part in data.split)
    print(f"leave-one-out split (train / valid / test): {sizes}")
    train_cfg = dict(chosen.train, **({"epochs": epochs} if epochs else {}))
    print(f"training {chosen.model} (preset {RUN_PRESET}): {chosen.hparams} {train_cfg}")
    print(f"(other training settings: {_defaults_except(train_cfg)})")
    result = train_model(chosen.model, data, chosen.hparams, train_cfg)
    rows = {chosen.model: result.metrics, "popularity": baseline_metrics(data)}
    print("\nTest metrics (leave-one-out; sampled = target among 99 uniform negatives):")
    print(format_results(rows))
    print(f"({result.metrics['epochs']} epochs, {result.metrics['train_seconds']} s)")
    path = export_trained(result.model, data, Path(base_dir), chosen.model)
    print(f"\nexported to {path}")
    for line in recommend_lines(path, user, 10):
        print(line)
    return rows


def _defaults_except(train_cfg: dict) -> dict:
    return {k: v for k, v in TRAIN_DEFAULTS.items() if k not in train_cfg}

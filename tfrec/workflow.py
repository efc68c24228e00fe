"""End-to-end jobs behind the CLI: train a registered model, evaluate it, export it, recommend.

A *run directory* holds what a later command needs: the Keras SavedModel (`keras/`) and
`run.json` (model name, data variant and source, hyperparameters, metrics, history). The
data split is recomputed from the variant, deterministically, instead of being stored.
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

from tfrec.baselines import Popularity
from tfrec.data import load_movielens
from tfrec.evaluation import format_table
from tfrec.models import build_model
from tfrec.training import RankingData, feature_store, fit

# Chosen by the search recorded in benchmarks/RESULTS.md (DeepFM on ml-100k leave-one-out).
RUN_MODEL = "deepfm"
RUN_HPARAMS = {"embedding_dim": 32, "dnn_units": [128, 64], "dropout": 0.1}
RUN_TRAIN = {
    "epochs": 12,
    "batch_size": 2048,
    "learning_rate": 2e-3,
    "num_negatives": 8,
    "patience": 3,
    "monitor": "val_sampled_ndcg@10",
}


@dataclass
class TrainResult:
    """A trained model with the data it was trained on, its metrics and Keras history."""

    model: tf.keras.Model
    data: RankingData
    metrics: dict
    history: dict


def load_data(
    variant="100k", source="auto", data_dir=None, path=None, history_length=20
) -> RankingData:
    """MovieLens `variant` as a leave-one-out `RankingData`."""
    ml = load_movielens(variant, source=source, data_dir=data_dir, path=path)
    return RankingData.from_movielens(ml, history_length=history_length)


def train_model(name, data: RankingData, model_hp: dict, train_cfg: dict) -> TrainResult:
    """Builds model `name` adapted to the training rows, fits it, evaluates it on test."""
    model = build_model(name, data.example_table(), **model_hp)
    start = time.perf_counter()
    # `history_length` shaped `data` already; every other setting is fit's (a typo fails loudly).
    history = fit(model, data, **{k: v for k, v in train_cfg.items() if k != "history_length"})
    seconds = time.perf_counter() - start
    metrics = flatten(data.evaluate(data.score_fn(model, "test"), "test"))
    metrics["epochs"] = len(history.history.get("loss", []))
    metrics["train_seconds"] = round(seconds, 1)
    return TrainResult(
        model, data, metrics, {k: [float(x) for x in v] for k, v in history.history.items()}
    )


def flatten(results: dict) -> dict:
    """{"sampled": {"hr@10": ...}, "full": {...}} -> {"sampled hr@10": ..., "full hr@10": ...}."""
    return {
        f"{protocol} {name}": value
        for protocol, metrics in results.items()
        for name, value in metrics.items()
        if name != "protocol"
    }


def baseline_metrics(data: RankingData, split="test") -> dict:
    """Leave-one-out metrics of the popularity baseline, for context next to any model."""
    seen = data.exclude[split]
    pop = Popularity().fit(
        seen["user_index"], seen["movie_index"], data.movielens.num_users, data.movielens.num_movies
    )
    return flatten(data.evaluate(pop.score_fn, split))


_COLUMNS = ("sampled hr@10", "sampled ndcg@10", "full hr@10", "full ndcg@10", "full mrr")


def format_results(rows: dict) -> str:
    """A table of the headline metrics (both protocols) for each named row."""
    return format_table({name: {c: m[c] for c in _COLUMNS if c in m} for name, m in rows.items()})


def train(name, source: dict, model_hp, train_cfg, output: Path) -> TrainResult:
    """`tfrec train`: train `name` on the data `source` describes (variant, source, data_dir,
    path: the arguments of `load_movielens`) and save the run directory `output`."""
    data = load_data(**source, history_length=train_cfg.get("history_length", 20))
    result = train_model(name, data, model_hp, train_cfg)
    save_run(result, output, name, source, model_hp, train_cfg)
    return result


def save_run(result: TrainResult, output: Path, name, source: dict, model_hp, train_cfg) -> None:
    """Writes the run directory atomically (temp dir, then rename)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".tmp-{output.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        result.model.save(tmp / "keras")
        meta = {
            "model": name,
            "data": {k: (str(v) if v is not None else None) for k, v in source.items()},
            "model_hparams": model_hp,
            "train": train_cfg,
            "metrics": result.metrics,
            "history": result.history,
        }
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=float))
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_run(run_dir: Path):
    """(model, RankingData, run metadata) of a run directory written by `tfrec train`."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise FileNotFoundError(
            f"No trained run at {run_dir} (missing run.json). Fix: `tfrec train deepfm --output {run_dir}`."
        )
    meta = json.loads(meta_path.read_text())
    data = load_data(**meta["data"], history_length=meta["train"].get("history_length", 20))
    model = tf.keras.models.load_model(run_dir / "keras", compile=False)
    return model, data, meta


def evaluate_run(run_dir: Path, with_baseline=True) -> dict:
    """`tfrec evaluate`: test metrics of a saved run, next to popularity."""
    model, data, meta = load_run(run_dir)
    rows = {meta["model"]: flatten(data.evaluate(data.score_fn(model, "test"), "test"))}
    if with_baseline:
        rows["popularity"] = baseline_metrics(data)
    return rows


def export_trained(model, data: RankingData, base_dir: Path, name: str) -> Path:
    """Exports for TF Serving with everything known at export time: every rating counts as
    seen (never recommended again) and as history; popularity drives cold start."""
    from tfrec.serving import export_model

    ml = data.movielens
    ratings = ml.ratings
    store = feature_store(ml, ratings, data.history_length)
    popularity = np.bincount(ratings["movie_index"], minlength=ml.num_movies)
    return export_model(
        model,
        store,
        seen=(ratings["user_id"], ratings["movie_id"]),
        movie_titles=ml.movies["movie_title"],
        base_dir=base_dir,
        name=name,
        popularity=popularity,
    )


def export_run(run_dir: Path, base_dir: Path, name: str | None = None) -> Path:
    """`tfrec export`: the run's model as `base_dir/<name>/<next version>/`."""
    model, data, meta = load_run(run_dir)
    return export_trained(model, data, Path(base_dir), name or meta["model"])


def recommend_lines(model_path: Path, user: str, k: int) -> list[str]:
    """`tfrec recommend`: printable top-k lines from an exported SavedModel."""
    from tfrec.serving import load_recommender

    recommend = load_recommender(model_path)
    ids, scores, titles = recommend([str(user)], k)
    lines = [f"Top {k} for user {user}:"]
    for rank, (movie, score, title) in enumerate(zip(ids[0], scores[0], titles[0], strict=True), 1):
        lines.append(f"{rank:3d}. {_text(title)}  (movie {_text(movie)}, score {float(score):.3f})")
    return lines


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def main_job(epochs=None, base_dir=Path("saved_models"), user="196", variant="100k") -> dict:
    """`make run`: data, DeepFM training with early stopping, both protocols next to
    popularity, export for TF Serving, and top-10 titles for one user."""
    data = load_data(variant, history_length=20)
    ml = data.movielens
    print(
        f"MovieLens {ml.variant} (source: {ml.source}): {ml.num_users:,} users, "
        f"{ml.num_movies:,} movies, {ml.num_ratings:,} ratings"
    )
    sizes = " / ".join(f"{len(part['user_index']):,}" for part in data.split)
    print(f"leave-one-out split (train / valid / test): {sizes}")
    train_cfg = dict(RUN_TRAIN, **({"epochs": epochs} if epochs else {}))
    print(f"training {RUN_MODEL} {RUN_HPARAMS} {train_cfg}")
    result = train_model(RUN_MODEL, data, RUN_HPARAMS, train_cfg)
    rows = {RUN_MODEL: result.metrics, "popularity": baseline_metrics(data)}
    print("\nTest metrics (leave-one-out; sampled = target among 99 uniform negatives):")
    print(format_results(rows))
    print(f"({result.metrics['epochs']} epochs, {result.metrics['train_seconds']} s)")
    path = export_trained(result.model, data, Path(base_dir), RUN_MODEL)
    print(f"\nexported to {path}")
    for line in recommend_lines(path, user, 10):
        print(line)
    return rows

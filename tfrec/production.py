"""The production loop's jobs behind the CLI: warm-start retraining, judging and comparing
exports, batch recommendations.

    tfrec train deepfm --warm-start runs/deepfm --data newer/ml-100k   # retrain with new ids
    tfrec evaluate --export saved_models/deepfm --split test           # judge a servable
    tfrec compare --export saved_models/a --export saved_models/b      # B - A with paired CIs
    tfrec recommend --all-users --k 10 --output recs.csv               # everyone's top-k

Each job loads what it needs from a run directory (`tfrec.workflow`) or an export
(`tfrec.serving`) and reports what it did; the library pieces are
`tfrec.training.warm_start`, `tfrec.serving.offline` and `tfrec.serving.batch`.
"""

from __future__ import annotations

import time
from pathlib import Path

from tfrec.evaluation import evaluate_model, format_table
from tfrec.models import train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.serving.batch import BatchReport, recommend_all
from tfrec.serving.offline import ExportComparison, ExportEvaluation, compare_exports
from tfrec.serving.offline import evaluate_export as judge_export
from tfrec.training import fit, replay_data, warm_start
from tfrec.workflow import (
    TrainResult,
    load_data,
    load_model,
    read_run,
    save_run,
)


def restore_optimizer(model, run_dir, optimizer: str, learning_rate: float) -> None:
    """Gives `model` (loaded from `run_dir`) the optimizer state its run saved: the weights
    checkpoint holds the optimizer's slots and step count when the run was trained."""
    opt = get_optimizer(optimizer, learning_rate)
    model.compile(optimizer=opt)
    opt.build(model.trainable_variables)
    model.load_weights(str(Path(run_dir) / "weights" / "model")).expect_partial()


def warm_start_run(previous, source: dict, train_cfg: dict, output, *, replay=None,
                   keep_optimizer=True, verbose="auto"):  # fmt: skip
    """`tfrec train --warm-start`: the previous run's model, extended to the data `source`
    describes, trained on it (all of it, or its new interactions plus a `replay` share of the
    old ones), judged on its test split and saved to `output`.

    Model hyperparameters are the previous run's; training settings are the previous run's
    updated by `train_cfg`. Returns ``(TrainResult, WarmStart)``; seconds include the warm
    start itself (loading, extending, copying), not the data loading.
    """
    previous = Path(previous)
    meta = read_run(previous)
    name, hparams = meta["model"], dict(meta.get("model_hparams") or {})
    data = load_data(**source)
    start = time.perf_counter()
    model = load_model(previous, data)
    before = {**train_defaults(name), **(meta.get("train") or {})}
    cfg = {**(meta.get("train") or {}), **train_cfg}
    settings = {**train_defaults(name), **cfg}
    if keep_optimizer and before["optimizer"] == settings["optimizer"]:
        restore_optimizer(model, previous, before["optimizer"], before["learning_rate"])
    warm = warm_start(
        model, data, hparams, keep_optimizer=keep_optimizer,
        learning_rate=settings["learning_rate"],
    )  # fmt: skip
    if keep_optimizer and before["optimizer"] != settings["optimizer"]:
        warm.optimizer_state = (
            f"reset: the optimizer changed ({before['optimizer']} -> {settings['optimizer']})"
        )
    train_data = data
    if replay is not None:
        old = load_data(**meta["data"])
        train_data = replay_data(data, old.train, replay, warm.model, seed=settings["seed"])
    fit_cfg = dict(cfg)
    if warm.optimizer is not None:
        fit_cfg["optimizer"] = warm.optimizer
    history = fit(warm.model, train_data, verbose=verbose, **fit_cfg)
    seconds = time.perf_counter() - start
    metrics = evaluate_model(warm.model, data, "test")
    metrics["epochs"] = len(history.history.get("loss", []))
    metrics["train_seconds"] = round(seconds, 1)
    logs = {k: [float(x) for x in v] for k, v in history.history.items()}
    result = TrainResult(warm.model, data, metrics, logs)
    info = {
        "from": str(previous),
        "previous_data": meta.get("data"),
        "replay": replay,
        "training_rows": int(len(train_data.train["user_index"])),
        "optimizer_state": warm.optimizer_state,
        "new_ids": warm.new_ids,
        "vocabularies": {k: list(v) for k, v in warm.vocabularies.items()},
    }
    save_run(result, output, name, source, hparams, cfg, extra={"warm_start": info})
    return result, warm


def judged_data(run=None, source: dict | None = None):
    """The `SplitData` exports are judged on: a run's data (`run`), else `source`."""
    if run is not None:
        return load_data(**read_run(run)["data"])
    return load_data(**(source or {}))


def evaluate_export_job(export, data, split="test", ks=(10,), depth=None) -> ExportEvaluation:
    """`tfrec evaluate --export`: both protocols through the export's signatures."""
    return judge_export(export, data, split, ks, depth=depth, progress=True)


def describe_evaluation(evaluation: ExportEvaluation) -> list[str]:
    """Printable lines: the headline table and notes on what the numbers mean."""
    path = Path(evaluation.path)
    columns = [
        f"{protocol}_{name}@{k}"
        for k in evaluation.ks
        for protocol in ("sampled", "full")
        for name in ("hr", "ndcg")
    ] + ["full_mrr", f"full_mrr@{evaluation.depth}"]
    shown = {c: evaluation.metrics[c] for c in columns if c in evaluation.metrics}
    lines = [format_table({f"{path.parent.name}/{path.name}": shown})]
    if evaluation.depth is not None:
        note = f"full ranking read from `recommend` lists of {evaluation.depth} items" + (
            " (truncated: MRR is MRR@depth)" if evaluation.truncated else " (whole catalogue)"
        )
        lines.append(note)
    if evaluation.unranked:
        lines.append(
            f"{evaluation.unranked} held-out targets were never recommended (the export does "
            "not have the movie, or counts it as seen): misses at every k."
        )
    return lines


def compare_job(a, b, data, split="test", ks=(10,), reps=2000, confidence=0.95, seed=0,
                depth=None) -> ExportComparison:  # fmt: skip
    """`tfrec compare`: B - A on the same held-out rows with paired bootstrap intervals."""
    return compare_exports(
        a, b, data, split, ks, reps=reps, confidence=confidence, seed=seed, depth=depth
    )


def batch_job(export, output, k=10, batch_size=256, users=None) -> BatchReport:
    """`tfrec recommend --all-users`: every user's top-k written to `output`."""
    return recommend_all(export, output, k=k, users=users, batch_size=batch_size)

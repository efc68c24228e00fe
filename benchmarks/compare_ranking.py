"""Compares every registered ranking model, and three classical baselines, on one budget.

Each model is trained on the MovieLens leave-one-out split (default ml-100k) through
`tfrec.workflow.train_model` with the same training configuration (the `make run` preset's
training settings, `tfrec.models.preset("movielens-100k")`, over the registry's defaults:
Adam, batch 2048, 8 uniform negatives per positive, at most ``--epochs`` epochs with early
stopping on the validation sampled NDCG@10, best epoch restored), then evaluated on the test
split. Hyperparameters come from the registry only: the preset's model (DeepFM) uses the
preset's, every other model its registered defaults (`tfrec models` prints them).
``neumf_pretrained`` is the paper's best NeuMF: GMF and the NCF MLP are trained first (same
budget each), combined by `NeuMF.from_pretrained` and fine-tuned; its time and epochs add up
all three runs.

Columns: sampled (target among 99 uniform unseen negatives) and full-catalogue HR@10 /
NDCG@10; AUC = mean over test users of the fraction of the 99 sampled negatives scored
below the target; epochs run; train time (wall clock of `fit`, including the per-epoch
validation ranking); examples/s (training examples, positives and negatives, per second of
pure training steps, validation excluded); peak memory (ru_maxrss of the process). Each job
runs in its own subprocess by default, so the peak memory is the job's own (TensorFlow and
the data included); with ``--in-process`` it is the running peak of the whole benchmark.

    .venv/bin/python benchmarks/compare_ranking.py                       # everything
    .venv/bin/python benchmarks/compare_ranking.py --models fm,neumf --epochs 10
    .venv/bin/python benchmarks/compare_ranking.py --quick               # 1 epoch smoke run
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from _bench_utils import make_run, make_run_training

from tfrec.baselines import EASE, ItemKNN, Popularity
from tfrec.evaluation import evaluate, evaluate_model, format_table, sampled_ranking, score_fn
from tfrec.models import NeuMF, available_models, model_defaults
from tfrec.training import fit
from tfrec.workflow import load_data, train_model

RANKING_MODELS = [m for m in available_models() if model_defaults(m).get("task") == "ranking"]
"""Every registered model trained with the pointwise ranking task (not the retrieval ones)."""

TRAIN = {k: v for k, v in make_run_training().items() if k != "epochs"}  # `make run`'s
PRETRAINED_LR_SCALE = 0.25  # NeuMF fine-tuning restarts Adam: smaller steps keep the init
BASELINES = {
    "popularity": Popularity,
    "itemknn": lambda: ItemKNN(k=50),
    "ease": lambda: EASE(l2=500.0),
}
MODELS = [*RANKING_MODELS, "neumf_pretrained"]
COLUMNS = [
    "sampled_hr@10",
    "sampled_ndcg@10",
    "full_hr@10",
    "full_ndcg@10",
    "auc",
    "epochs",
    "train s",
    "examples/s",
    "peak MB",
]


def hparams(name: str) -> dict:
    """The comparison's hyperparameters of model `name`: the preset's for its model, else none
    (registry defaults)."""
    run = make_run()
    return dict(run.hparams) if name == run.model else {}


class Throughput(tf.keras.callbacks.Callback):
    """Seconds spent in training steps only (from epoch start to the epoch's last batch)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.epochs = 0.0, 0
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += self._last - self._start
        self.epochs += 1


def sampled_auc(scores, data, split="test") -> float:
    """Mean per-user AUC of the target against the sampled protocol's 99 negatives."""
    aucs = []

    def capture(users, items):
        values = np.asarray(scores(users, items), np.float64)
        target, negatives = values[:, :1], values[:, 1:]
        aucs.append(np.mean((negatives < target) + 0.5 * (negatives == target), axis=1))
        return values

    users, targets = data.targets(split)
    sampled_ranking(capture, users, targets, data.num_items, data.seen(split), seed=0)
    return float(np.concatenate(aucs).mean())


def _train(name, data, train_cfg):
    meter = Throughput()
    cfg = dict(train_cfg)
    verbose = cfg.pop("verbose", "auto")
    result = train_model(name, data, hparams(name), dict(cfg, callbacks=[meter]), verbose=verbose)
    return result, meter


def run_model(name, data, train_cfg) -> dict:
    """Trains and evaluates one model (or the pretrained NeuMF pipeline); returns its row."""
    examples_per_epoch = len(data.train["user_index"]) * (1 + train_cfg["num_negatives"])
    if name != "neumf_pretrained":
        result, meter = _train(name, data, train_cfg)
        model, metrics = result.model, dict(result.metrics)
        steps_seconds, epochs = meter.seconds, meter.epochs
        train_seconds = metrics["train_seconds"]
        epochs_text = str(epochs)
    else:
        gmf, gmf_meter = _train("gmf", data, train_cfg)
        mlp, mlp_meter = _train("ncf_mlp", data, train_cfg)
        model = NeuMF.from_pretrained(gmf.model, mlp.model, alpha=0.5)
        meter = Throughput()
        cfg = dict(train_cfg, learning_rate=train_cfg["learning_rate"] * PRETRAINED_LR_SCALE)
        start = time.perf_counter()
        fit(model, data, callbacks=[meter], **cfg)
        finetune = time.perf_counter() - start
        metrics = evaluate_model(model, data, "test")
        meters = (gmf_meter, mlp_meter, meter)
        steps_seconds = sum(m.seconds for m in meters)
        epochs = sum(m.epochs for m in meters)
        train_seconds = gmf.metrics["train_seconds"] + mlp.metrics["train_seconds"] + finetune
        epochs_text = "+".join(str(m.epochs) for m in meters)
    metrics["auc"] = sampled_auc(score_fn(model, data, "test"), data)
    metrics["epochs"] = epochs_text
    metrics["train s"] = round(float(train_seconds), 1)
    metrics["examples/s"] = round(epochs * examples_per_epoch / max(steps_seconds, 1e-9))
    return metrics


def run_baseline(name, data) -> dict:
    """Fits a classical baseline on train + valid and evaluates it like the models."""
    known = data.known("test")
    start = time.perf_counter()
    model = BASELINES[name]().fit(
        known["user_index"], known["movie_index"], data.num_users, data.num_items
    )
    seconds = time.perf_counter() - start
    users, targets = data.targets("test")
    metrics = evaluate(model.score_fn, users, targets, data.num_items, data.seen("test"))
    metrics.update(auc=sampled_auc(model.score_fn, data), epochs="-")
    metrics.update({"train s": round(seconds, 1), "examples/s": "-"})
    return metrics


def run_job(name, data, train_cfg) -> dict:
    """One row of the table, with the process's peak memory so far."""
    row = run_baseline(name, data) if name in BASELINES else run_model(name, data, train_cfg)
    row["peak MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def _write_json(path: Path, payload) -> None:
    """Writes JSON atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=float)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _child(name, args, tmpdir) -> dict:
    """Runs one job in a fresh Python process (so its peak memory is its own)."""
    out = Path(tmpdir) / f"{name}.json"
    command = [sys.executable, __file__, "--job", name, "--job-output", str(out)]
    command += ["--variant", args.variant, "--source", args.source, "--epochs", str(args.epochs)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def _display(row: dict) -> dict:
    """The table's cells: metrics with 4 decimals, seconds with 1, counts as integers."""
    cells = {c: row[c] for c in COLUMNS}
    cells["train s"] = f"{float(row['train s']):.1f}"
    return cells


def quality_report(rows: dict) -> list[str]:
    """Lines checking the quality bar: every model sampled HR@10 >= 0.62; NeuMF and the best
    model sampled HR@10 >= 0.70 and full HR@10 >= 0.14."""
    models = {k: v for k, v in rows.items() if k not in BASELINES}
    if not models:
        return []
    lines = []
    for name, row in models.items():
        if row["sampled_hr@10"] < 0.62:
            lines.append(f"below bar: {name} sampled_hr@10 {row['sampled_hr@10']:.4f} < 0.62")
    best = max(models, key=lambda k: models[k]["sampled_hr@10"])
    for name in dict.fromkeys([best, *(k for k in models if k.startswith("neumf"))]):
        row = models[name]
        ok = row["sampled_hr@10"] >= 0.70 and row["full_hr@10"] >= 0.14
        lines.append(
            f"{'meets' if ok else 'below'} bar (sampled >= 0.70, full >= 0.14): {name} "
            f"sampled {row['sampled_hr@10']:.4f}, full {row['full_hr@10']:.4f}"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument(
        "--baselines", default=",".join(BASELINES), help="comma-separated, or 'none'"
    )
    parser.add_argument("--epochs", type=int, default=20, help="max epochs (early stopping)")
    parser.add_argument("--quick", action="store_true", help="1 epoch per model (smoke run)")
    parser.add_argument("--variant", default="100k")
    parser.add_argument("--source", default="auto")
    parser.add_argument("--in-process", action="store_true", help="no subprocess per job")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--job-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 1
    train_cfg = dict(TRAIN, epochs=args.epochs, patience=min(TRAIN["patience"], args.epochs))
    train_cfg["verbose"] = 2

    if args.job:  # child process: one job, result to --job-output
        data = load_data(args.variant, source=args.source)
        _write_json(args.job_output, run_job(args.job, data, train_cfg))
        return None

    baselines = [] if args.baselines == "none" else [b for b in args.baselines.split(",") if b]
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(baselines) - set(BASELINES))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {MODELS + list(BASELINES)}")
    jobs = baselines + models
    rows = {}
    data = load_data(args.variant, source=args.source) if args.in_process else None
    with tempfile.TemporaryDirectory() as tmpdir:
        for name in jobs:
            print(f"=== {name} ===", flush=True)
            rows[name] = (
                run_job(name, data, train_cfg) if data is not None else _child(name, args, tmpdir)
            )
    print(f"\nMovieLens {args.variant}, leave-one-out test split, max {args.epochs} epochs:")
    print(format_table({name: _display(row) for name, row in rows.items()}))
    for line in quality_report(rows):
        print(line)
    if args.json:
        _write_json(args.json, {"epochs": args.epochs, "train": train_cfg, "rows": rows})
    return rows


if __name__ == "__main__":
    main()

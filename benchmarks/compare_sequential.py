"""Sequential recommenders (GRU4Rec, SASRec, BERT4Rec) x losses, next to DeepFM and EASE.

Every model trains on the MovieLens leave-one-out split (default ml-100k) with its registry
defaults and training settings (`tfrec.models.train_defaults`: batches of 128 windows, 32
for BERT4Rec, Adam 1e-3, early stopping on validation full NDCG@10 with patience 10, best epoch restored) and
is judged on the test split by `tfrec.evaluation.evaluate_model`, the same evaluator as every
model. DeepFM runs with the `make run` preset, EASE with its usual l2 = 500. Each job runs in
its own subprocess, so memory and timings are the job's own.

Columns: sampled (target among 99 uniform unseen negatives) and full-catalogue HR@10 / NDCG@10,
full MRR; epochs run; train time (wall clock of `fit`, validation included); seq/s (training
windows per second of training steps); users/s (test users scored against the whole catalogue
per second through the evaluator's scorer); recommend p50 / p99 (ms, one user per call, the
exported module's ``recommend`` signature in process).

    .venv/bin/python benchmarks/compare_sequential.py                       # everything
    .venv/bin/python benchmarks/compare_sequential.py --models sasrec --losses softmax,gbce
    .venv/bin/python benchmarks/compare_sequential.py --quick               # 1-epoch smoke run
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from _bench_utils import machine_info, peak_rss_mb

from tfrec.baselines import EASE
from tfrec.evaluation import evaluate, evaluate_model, format_table, score_fn
from tfrec.models import build_model, preset
from tfrec.serving import recommender_module
from tfrec.training import fit
from tfrec.workflow import load_data

SEQUENTIAL = ("gru4rec", "sasrec", "bert4rec")
LOSSES = ("softmax", "sampled_softmax", "bce", "gbce")
LOSS_NEGATIVES = {"softmax": 256, "sampled_softmax": 256, "bce": 1, "gbce": 256}
"""Negatives per target of each loss: BCE with one is the original SASRec; gSASRec uses 256."""
COLUMNS = [
    "sampled_hr@10",
    "sampled_ndcg@10",
    "full_hr@10",
    "full_ndcg@10",
    "full_mrr",
    "epochs",
    "best epoch",
    "train s",
    "seq/s",
    "users/s",
    "rec p50 ms",
    "rec p99 ms",
    "peak MB",
]


class BatchTimer(tf.keras.callbacks.Callback):
    """Seconds spent in training steps (validation excluded), after the first two calls
    (tracing). A call runs ``steps_per_execution`` steps: Keras passes the first step's index
    to ``on_train_batch_begin`` and the last one's to ``on_train_batch_end``."""

    def __init__(self):
        super().__init__()
        self.seconds, self.steps, self.seen = 0.0, 0, 0

    def on_train_batch_begin(self, batch, logs=None):
        self._start, self._first = time.perf_counter(), batch

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen > 2:
            self.seconds += time.perf_counter() - self._start
            self.steps += batch - self._first + 1

    def rate(self, batch_size: int) -> float:
        return self.steps * batch_size / self.seconds if self.seconds else float("nan")


def _recommend_latency(model, data, repeats: int) -> tuple[float, float]:
    module = recommender_module(model, data, as_of="test")
    users = np.asarray(data.user_ids).astype(bytes)
    k = tf.constant(10)
    module.recommend(tf.constant(users[:1]), k)  # trace once
    times = []
    for i in range(repeats):
        user = tf.constant(users[i % len(users) : i % len(users) + 1])
        start = time.perf_counter()
        module.recommend(user, k)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _scoring_rate(model, data) -> float:
    scorer = score_fn(model, data, "test")
    users = np.arange(data.num_users)
    items = np.tile(np.arange(data.num_items), (users.size, 1))
    scorer(users[:8], items[:8])  # trace once
    start = time.perf_counter()
    scorer(users, items)
    return users.size / (time.perf_counter() - start)


def job(spec: dict) -> dict:
    """One row: train spec["model"] with spec["hparams"] / spec["train"], measure it."""
    data = load_data(spec["variant"])
    if spec["model"] == "ease":
        known = data.known("test")
        ease = EASE(l2=500.0).fit(known["user_index"], known["movie_index"], data.num_users,
                                  data.num_items)  # fmt: skip
        users, targets = data.targets("test")
        return evaluate(ease.score_fn, users, targets, data.num_items, data.seen("test"))
    tf.keras.utils.set_random_seed(0)
    model = build_model(spec["model"], data, **spec["hparams"])
    timer = BatchTimer()
    start = time.perf_counter()
    history = fit(model, data, callbacks=[timer], verbose=0, **spec["train"])
    seconds = time.perf_counter() - start
    row = evaluate_model(model, data, "test")
    row["epochs"] = len(history.history["loss"])
    curve = history.history.get("val_full_ndcg@10")
    if curve:  # the validation curve early stopping read, to tell a slow start from a failure
        row["best epoch"] = int(np.argmax(curve)) + 1
        row["val_full_ndcg@10 curve"] = [round(float(x), 4) for x in curve]
    row["train s"] = round(seconds, 1)
    batch = spec["train"].get("batch_size") or _batch(spec["model"])
    row["seq/s" if model.examples == "sequences" else "ex/s"] = timer.rate(batch)
    row["users/s"] = _scoring_rate(model, data)
    row["rec p50 ms"], row["rec p99 ms"] = _recommend_latency(model, data, spec["repeats"])
    row["peak MB"] = peak_rss_mb()
    return row


def _batch(name: str) -> int:
    from tfrec.models import train_defaults

    return train_defaults(name)["batch_size"]


def plan(args) -> dict:
    """{row name: job spec} for the selected models and losses, in the order they run: EASE,
    every model with the first loss (softmax by default), DeepFM, then the other losses."""
    train = {"epochs": 1} if args.quick else ({"epochs": args.epochs} if args.epochs else {})
    chosen = preset("movielens-100k")
    deepfm_train = {**chosen.train, **({"epochs": 1} if args.quick else {})}
    jobs = {"ease": {"model": "ease", "hparams": {}, "train": {}}} if args.baselines else {}
    for position, loss in enumerate(args.losses.split(",")):
        for name in args.models.split(","):
            hparams = {"loss": loss, "loss_negatives": LOSS_NEGATIVES[loss]}
            jobs[f"{name} {loss}"] = {"model": name, "hparams": hparams, "train": train}
        if position == 0 and args.baselines:
            jobs["deepfm (make run)"] = {"model": chosen.model, "hparams": chosen.hparams,
                                         "train": deepfm_train}  # fmt: skip
    for spec in jobs.values():
        spec.update(variant=args.variant, repeats=20 if args.quick else 200)
    return jobs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SEQUENTIAL))
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--epochs", type=int, help="cap on epochs (default: the registry's)")
    parser.add_argument("--variant", default="100k")
    parser.add_argument("--quick", action="store_true", help="one epoch per model (smoke run)")
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run DeepFM (make run preset) and EASE (--no-baselines: the grid only)",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        print("RESULT" + json.dumps(job(json.loads(args.job)), default=float))
        return
    print(json.dumps(machine_info()))
    rows = {}
    for name, spec in plan(args).items():
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(Path(__file__)), "--job", json.dumps(spec)],
            capture_output=True,
            text=True,
            cwd=str(Path(__file__).parent),
        )
        if done.returncode:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
        rows[name] = json.loads(line[len("RESULT") :])
        # Each row as soon as it is measured, so an interrupted run keeps what it finished.
        print(f"{name}: done in {time.perf_counter() - start:.0f} s {line}", flush=True)
    table = {name: {c: row[c] for c in COLUMNS if c in row} for name, row in rows.items()}
    print(format_table(table, digits=4))


if __name__ == "__main__":
    main()

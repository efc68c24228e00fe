"""Benchmark of the two-stage pipeline: quality on MovieLens, latency on a 10^6-movie catalogue.

Quality (``--mode quality``): trains DeepFM (the `make run` preset) and a two-tower model
(registry defaults, in-batch softmax) on MovieLens (leave-one-out), then reports on the test split, with the user's train/valid movies masked:
  * exact DeepFM ranking of the whole catalogue (HR@10, NDCG@10);
  * two-tower full-corpus retrieval (HR@10/50/100/200);
  * the two-stage pipeline for several N: candidate recall@N (is the held-out movie among
    the N retrieved?) and HR@10 / NDCG@10 when DeepFM ranks only those N, with the share of
    exact DeepFM's HR@10 it keeps (target: N=100 keeps >= 95%).

Latency (``--mode latency``): builds the pipeline (two-tower + IVF + DeepFM) over a synthetic
catalogue of ``--movies`` movies, exports it as one SavedModel, reloads it with
`tf.saved_model.load` and times ``recommend`` for one user at a time (target p99 < 50 ms at
10^6 movies). Models are untrained there: latency does not depend on the weights.

    .venv/bin/python benchmarks/bench_pipeline.py --mode quality --epochs 8
    .venv/bin/python benchmarks/bench_pipeline.py --mode latency --movies 1000000
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import tempfile
import time

import numpy as np
import tensorflow as tf
from _bench_utils import make_run, make_run_training

from tfrec.data import SplitData, load_movielens
from tfrec.evaluation import evaluate_model, format_table, full_ranking, score_fn
from tfrec.features.inputs import feature_store
from tfrec.models import build_model
from tfrec.pipeline import TwoStagePipeline, export_pipeline
from tfrec.retrieval import synthetic_catalogue
from tfrec.training import fit

_LOW = -1e9  # score of movies outside the candidate set (finite: ties count against targets)


def all_scores(score_fn, num_users, num_items, batch=256) -> np.ndarray:
    """``[num_users, num_items]`` scores of every movie for every user."""
    items = np.arange(num_items, dtype=np.int64)
    rows = [
        score_fn(
            np.arange(s, min(s + batch, num_users)), np.tile(items, (min(batch, num_users - s), 1))
        )
        for s in range(0, num_users, batch)
    ]
    return np.concatenate(rows).astype(np.float64)


def two_stage_metrics(ranking, retrieval, data, n, split="test") -> dict:
    """Candidate recall@n, and HR/NDCG@10 when the ranker only sees the n retrieved movies."""
    exclude = data.seen(split)
    users, targets = data.targets(split)
    seen = exclude.dense_mask(np.arange(data.num_users))
    retrieved = np.where(seen, -np.inf, retrieval)
    candidates = np.argpartition(-retrieved, n - 1, axis=1)[:, :n]
    keep = np.zeros_like(seen)
    np.put_along_axis(keep, candidates, True, axis=1)
    scores = np.where(keep, ranking, _LOW)
    result = full_ranking(
        lambda u, i: np.take_along_axis(scores[u], i, axis=1),
        users,
        targets,
        data.num_items,
        exclude,
        ks=(10,),
    )
    result["candidate recall"] = float(keep[users, targets].mean())
    return result


def quality(args) -> dict:
    """Trains both models on MovieLens and prints the quality table."""
    data = SplitData.from_movielens(load_movielens(args.variant))
    run = make_run()
    deepfm = build_model(run.model, data, **run.hparams)
    start = time.perf_counter()
    fit(deepfm, data, verbose=0, **make_run_training(epochs=args.epochs))
    print(f"DeepFM trained in {time.perf_counter() - start:.0f} s", flush=True)
    two_tower = build_model("two_tower", data)
    start = time.perf_counter()
    fit(
        two_tower,
        data,
        verbose=0,
        epochs=args.tt_epochs,
        patience=args.tt_epochs,  # a fixed budget; the best validation epoch is kept
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_negatives=args.negatives,
    )
    print(f"two-tower trained in {time.perf_counter() - start:.0f} s", flush=True)
    exact = evaluate_model(deepfm, data, "test", protocols=("full",))
    rows = {"DeepFM, whole catalogue": {k: exact[f"full_{k}"] for k in ("hr@10", "ndcg@10")}}
    tt = evaluate_model(two_tower, data, "test", ks=(10, 50, 100, 200), protocols=("full",))
    rows["two-tower alone"] = {f"hr@{k}": tt[f"full_hr@{k}"] for k in (10, 50, 100, 200)}
    rows["two-tower alone"]["ndcg@10"] = tt["full_ndcg@10"]
    ranking = all_scores(score_fn(deepfm, data, "test"), data.num_users, data.num_items)
    retrieval = all_scores(score_fn(two_tower, data, "test"), data.num_users, data.num_items)
    for n in args.candidates:
        result = two_stage_metrics(ranking, retrieval, data, n)
        rows[f"two-stage N={n}"] = {
            "candidate recall": result["candidate recall"],
            "hr@10": result["hr@10"],
            "ndcg@10": result["ndcg@10"],
            "share of exact hr@10": result["hr@10"] / exact["full_hr@10"],
        }
    print(
        f"\nMovieLens {data.movielens.variant}, leave-one-out test, full ranking "
        "(train/valid masked)"
    )
    print(format_table(rows))
    return rows


def latency(args) -> dict:
    """Exports the pipeline over a synthetic catalogue and times `recommend` per user."""
    start = time.perf_counter()
    ml = synthetic_catalogue(args.users, args.movies, 20, seed=args.seed)
    data = SplitData.from_movielens(ml)
    run = make_run()
    two_tower = build_model("two_tower", data)
    deepfm = build_model(run.model, data, **run.hparams)
    history = max(two_tower.history_length, deepfm.history_length)
    store = feature_store(data, "all", history)
    seen = (ml.ratings["user_id"], ml.ratings["movie_id"])
    print(f"data and models: {time.perf_counter() - start:.0f} s", flush=True)
    users = np.random.default_rng(args.seed).choice(ml.user_ids, args.requests)
    rows = {}
    for kind in args.indexes:
        start = time.perf_counter()
        pipeline = TwoStagePipeline(
            two_tower, deepfm, store, seen, num_candidates=args.n, index=kind, nprobe=args.nprobe
        )
        build = time.perf_counter() - start
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            start = time.perf_counter()
            path = export_pipeline(pipeline, tmp, name="two_stage", warmup=False)
            export = time.perf_counter() - start
            recommend = tf.saved_model.load(str(path)).signatures["recommend"]
            k = tf.constant(10)
            recommend(user_id=tf.constant(users[:1]), k=k)  # first call initialises tables
            times = []
            for user in users:
                begin = time.perf_counter()
                recommend(user_id=tf.constant([user]), k=k)["movie_ids"].numpy()
                times.append(time.perf_counter() - begin)
        ms = np.asarray(times) * 1e3
        name = f"{kind} N={args.n}" + (f" nprobe={args.nprobe}" if kind == "ivf" else "")
        rows[name] = {
            "p50 ms": np.percentile(ms, 50),
            "p99 ms": np.percentile(ms, 99),
            "build s": build,
            "export s": export,
        }
        print(f"{name}: done", flush=True)
    print(
        f"\nrecommend for one user, SavedModel reloaded, {args.movies:,} movies, "
        f"{args.requests} requests"
    )
    print(format_table(rows, digits=1))
    return rows


def main(argv=None):
    """Parses flags and runs the chosen mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("quality", "latency"), default="quality")
    parser.add_argument("--variant", default="100k")
    parser.add_argument("--epochs", type=int, default=8, help="DeepFM epochs (early stopping)")
    parser.add_argument("--tt-epochs", type=int, default=10, help="two-tower epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--negatives", type=int, default=0, help="mixed uniform negatives")
    parser.add_argument("--candidates", default="50,100,200")
    parser.add_argument("--movies", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--n", type=int, default=100, help="candidates retrieved")
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--indexes", default="ivf,brute_force")
    parser.add_argument("--tmp", default=None, help="where the export is written")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.candidates = [int(v) for v in args.candidates.split(",")]
    args.indexes = args.indexes.split(",")
    return quality(args) if args.mode == "quality" else latency(args)


if __name__ == "__main__":
    main()

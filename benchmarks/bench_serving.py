"""Serving benchmark: what a tfrec export costs per request, measured through its signatures.

Exists to put numbers on the SavedModel TF Serving would run (loaded with plain
`tf.saved_model.load`, so the graph is exactly the served one): `serving_default` throughput
at batch 1 and 4096, `recommend` latency for one user and for 64 users, and the time to score
every user x movie pair of a MovieLens-100k-sized catalogue (943 x 1682), both pair by pair
through `serving_default` and user by user through `recommend`. When the model is built here,
the same catalogue is also scored in process through `CatalogueScorer`: with the model's own
(factorised) `score_all`, and with the reference path (the whole network on every pair).

Usage:
  python benchmarks/bench_serving.py                         # the make-run DeepFM, synthetic data
  python benchmarks/bench_serving.py --model-dir saved_models/deepfm
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import tempfile
import time

import numpy as np
import tensorflow as tf
from _bench_utils import catalogue_scorers, make_run, median_time

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import build_model
from tfrec.serving import export_model, latest_export
from tfrec.training import fit


def synthetic_split(args) -> SplitData:
    """MovieLens-100k-shaped synthetic data (users, movies with genres and titles, power-law
    popularity), about `args.interactions` ratings, split leave-one-out."""
    per_user = int(np.clip(args.interactions // args.users, 3, args.movies))
    ml = synthetic_movielens(
        num_users=args.users, num_movies=args.movies, ratings_per_user=per_user, seed=0
    )
    return SplitData.from_movielens(ml)


def build_export(args, directory: str):
    """Builds (and optionally fits) the `make run` model, exports it; returns (path, rows of
    in-process catalogue scoring)."""
    data = synthetic_split(args)
    run = make_run()
    model = build_model(run.model, data, **{**run.hparams, "history_length": args.history})
    if args.fit_epochs:
        fit(model, data, epochs=args.fit_epochs, verbose=0)
    rows = in_process(model, data, args)
    started = time.perf_counter()
    path = export_model(model, data, as_of="all", base_dir=directory, name=run.model)
    print(f"export: {time.perf_counter() - started:.1f} s -> {path}")
    return path, rows


def in_process(model, data, args) -> list[tuple[str, str]]:
    """Every user x item pair scored in process through `CatalogueScorer`, fast and reference
    (the reference is timed once: it runs the whole network on each of the ~1.6M pairs)."""
    users = np.arange(data.num_users)
    items = np.broadcast_to(np.arange(data.num_items), (users.size, data.num_items))
    scorers = catalogue_scorers(model, data, "all")
    got = scorers["factorised"](users[:8], items[:8])  # also warms both paths up
    want = scorers["reference"](users[:8], items[:8])
    label = f"all {users.size} x {data.num_items} pairs"
    rows = []
    for name, path, repeats in (
        ("factorised", "CatalogueScorer", args.score_repeats),
        ("reference", "model per pair", 1),
    ):
        scorer = scorers[name]
        seconds = median_time(lambda scorer=scorer: scorer(users, items), repeats, warmup=0)
        rows.append((f"{label}, {path} ({name})", f"{seconds:.2f} s"))
    rows.append(("factorised vs reference, max |diff|", f"{float(np.abs(got - want).max()):.1e}"))
    return rows


def latencies(fn, repeats: int, warmup: int = 3) -> np.ndarray:
    """Wall times (seconds) of `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - started
    return times


def ids_of(loaded):
    """User ids and catalogue movie ids stored in an export."""
    store = loaded.store
    table = store.users if getattr(store, "users", None) is not None else store.history
    return table.ids.numpy(), loaded.catalogue_ids.numpy()


def run(args) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        if args.model_dir:
            path, rows = latest_export(args.model_dir), []
        else:
            path, rows = build_export(args, scratch)
        return measure(tf.saved_model.load(str(path)), args) + rows


def measure(loaded, args) -> list[tuple[str, str]]:
    """Runs every measurement on a loaded export; returns ``[(measure, result)]`` rows."""
    score = loaded.signatures["serving_default"]
    recommend = loaded.signatures["recommend"]
    users, movies = ids_of(loaded)
    rng = np.random.default_rng(1)
    rows = []

    for batch, repeats in ((1, args.repeats), (4096, max(5, args.repeats // 20))):
        u = tf.constant(rng.choice(users, batch))
        m = tf.constant(rng.choice(movies, batch))
        t = latencies(lambda u=u, m=m: score(user_id=u, movie_id=m), repeats)
        rows.append((f"serving_default, batch {batch}", f"{batch / np.median(t):,.0f} pairs/s"))

    k = tf.constant(10, tf.int32)
    for batch, repeats in ((1, args.repeats), (64, max(10, args.repeats // 10))):
        u = tf.constant(rng.choice(users, batch))
        t = latencies(lambda u=u: recommend(user_id=u, k=k), repeats) * 1e3
        p50, p99 = np.percentile(t, [50, 99])
        rows.append((f"recommend k=10, {batch} user(s)", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"))

    pairs_u = np.repeat(users, len(movies))
    pairs_m = np.tile(movies, len(users))
    chunk = 4096
    started = time.perf_counter()
    for start in range(0, len(pairs_u), chunk):
        score(
            user_id=tf.constant(pairs_u[start : start + chunk]),
            movie_id=tf.constant(pairs_m[start : start + chunk]),
        )
    elapsed = time.perf_counter() - started
    label = f"all {len(users)} x {len(movies)} pairs"
    rows.append((f"{label}, serving_default by 4096", f"{elapsed:.1f} s"))

    everything = tf.constant(len(movies), tf.int32)
    started = time.perf_counter()
    for start in range(0, len(users), 64):
        recommend(user_id=tf.constant(users[start : start + 64]), k=everything)
    elapsed = time.perf_counter() - started
    rows.append((f"{label}, recommend by 64 users", f"{elapsed:.1f} s"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="existing export (model or version directory)")
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--movies", type=int, default=1682)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=20, help="the model's history_length")
    parser.add_argument("--fit-epochs", type=int, default=0, help="0: untrained (same cost)")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument(
        "--score-repeats", type=int, default=3, help="timed in-process catalogue scorings"
    )
    args = parser.parse_args(argv)
    rows = run(args)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 28}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Serving benchmark: what a tfrec export costs per request, measured through its signatures.

Exists to put numbers on the SavedModel TF Serving would run (loaded with plain
`tf.saved_model.load`, so the graph is exactly the served one): `serving_default` throughput
at batch 1 and 4096, `recommend` latency for one user and for 64 users, and the time to score
every user x movie pair of a MovieLens-100k-sized catalogue (943 x 1682), both pair by pair
through `serving_default` and user by user through `recommend`.

Usage:
  python benchmarks/bench_serving.py                         # a make-run-shaped DeepFM, synthetic data
  python benchmarks/bench_serving.py --model-dir saved_models/deepfm
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfrec.features.store import FeatureStore
from tfrec.models import build_model
from tfrec.serving import export_model, latest_export
from tfrec.towers import RECENT_MOVIES
from tfrec.workflow import RUN_HPARAMS


def synthetic_movielens(num_users: int, num_movies: int, interactions: int, history: int, seed=0):
    """MovieLens-100k-shaped tables (users, movies, history) and training interactions."""
    rng = np.random.default_rng(seed)
    users = {
        "user_id": np.arange(1, num_users + 1).astype(str),
        "user_gender": rng.random(num_users) < 0.7,
        "bucketized_user_age": rng.choice(
            [1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0], num_users
        ).astype(np.float32),
        "user_occupation_text": rng.choice([f"job{i}" for i in range(21)], num_users),
        "user_zip_code": rng.integers(10000, 99999, num_users).astype(str),
    }
    words = rng.choice([f"w{i}" for i in range(300)], (num_movies, 2))
    years = rng.integers(1930, 1999, num_movies).astype(str)
    titles = np.char.add(np.char.add(words[:, 0], " "), words[:, 1])
    movies = {
        "movie_id": np.arange(1, num_movies + 1).astype(str),
        "movie_title": np.char.add(np.char.add(titles, " ("), np.char.add(years, ")")),
        "movie_genres": np.where(
            rng.random((num_movies, 3)) < 0.5, rng.integers(0, 19, (num_movies, 3)), -1
        ).astype(np.int64),
    }
    # Zipf-like popularity, as in MovieLens.
    weights = 1.0 / np.arange(1, num_movies + 1) ** 0.8
    user_rows = rng.integers(0, num_users, interactions)
    movie_rows = rng.choice(num_movies, interactions, p=weights / weights.sum())
    recent = movies["movie_id"][
        rng.choice(num_movies, (num_users, history), p=weights / weights.sum())
    ]
    histories = {"user_id": users["user_id"], RECENT_MOVIES: recent}
    table = {key: value[user_rows] for key, value in users.items()}
    table.update({key: value[movie_rows] for key, value in movies.items()})
    table[RECENT_MOVIES] = recent[user_rows]
    table["label"] = (rng.random(interactions) < 0.5).astype(np.float32)
    seen = (users["user_id"][user_rows], movies["movie_id"][movie_rows])
    return users, movies, histories, table, seen


def build_export(args, directory: str):
    """Builds (and optionally fits) a DeepFM shaped like the `make run` one, then exports it."""
    users, movies, history, table, seen = synthetic_movielens(
        args.users, args.movies, args.interactions, args.history
    )
    model = build_model("deepfm", table, **RUN_HPARAMS)
    if args.fit_epochs:
        model.compile(tf.keras.optimizers.Adam(1e-3))
        data = tf.data.Dataset.from_tensor_slices(table).batch(4096)
        model.fit(data, epochs=args.fit_epochs, verbose=0)
    store = FeatureStore(users, movies, history)
    started = time.perf_counter()
    path = export_model(model, store, seen, base_dir=directory, name="deepfm")
    print(f"export: {time.perf_counter() - started:.1f} s -> {path}")
    return path


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
        path = latest_export(args.model_dir) if args.model_dir else build_export(args, scratch)
        return measure(tf.saved_model.load(str(path)), args)


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
    parser.add_argument("--history", type=int, default=20, help="recent movies per user")
    parser.add_argument("--fit-epochs", type=int, default=0, help="0: untrained (same cost)")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    rows = run(args)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 28}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

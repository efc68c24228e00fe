"""Serving load benchmark: an in-process export under concurrent requests.

Exists to show how a tfrec export behaves when several clients call it at once, as TF Serving
does with its session thread pool. The SavedModel is loaded with plain `tf.saved_model.load`,
so the graph is exactly the served one. For 1, 4, 8 and 16 threads, every thread calls the
same signature for a fixed time, on requests drawn from a fixed pool:

* `recommend`: one user, k=10;
* `serving_default`: a batch of user-movie pairs.

For each signature and thread count it reports throughput (requests/s), p50 and p99 latency,
errors, and resident memory (RSS) at the start and end. Errors include exceptions and also
answers that differ from the same request run serially before the load. Flat RSS and zero
errors mean the export is safe to share between threads.

Usage:
  python benchmarks/bench_serving_load.py                     # ml-100k-shaped DeepFM export
  python benchmarks/bench_serving_load.py --seconds 2 --threads 1,4
  python benchmarks/bench_serving_load.py --model-dir saved_models/deepfm
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import os
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf
from _bench_utils import emit, machine_info

from tfrec.data import SplitData
from tfrec.data.movielens import from_tables
from tfrec.data.synthetic import synthetic_tables
from tfrec.models import build_model, preset
from tfrec.serving import export_model, latest_export
from tfrec.workflow import RUN_PRESET


def rss_mb() -> float:
    """Current resident memory of this process in MB (not the peak)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_export(directory: str, users: int, movies: int) -> str:
    """Exports the `make run` DeepFM (untrained: serving cost does not depend on the weights)
    on generated MovieLens-shaped data."""
    tables = synthetic_tables(num_users=users, num_movies=movies, ratings_per_user=60, seed=0)
    data = SplitData.from_movielens(from_tables(tables, "100k", "synthetic"))
    model = build_model(preset(RUN_PRESET).model, data, **preset(RUN_PRESET).hparams)
    return str(export_model(model, data, base_dir=directory, name="deepfm", warmup=False))


def make_requests(loaded, size: int, batch: int, k: int, num_users: int, seed: int = 0) -> dict:
    """{signature: [inputs]}: `recommend` for one user, `serving_default` for `batch` pairs.

    Users are MovieLens ids "1".."num_users" plus one the export does not know (cold start);
    movies come from the export's catalogue.
    """
    rng = np.random.default_rng(seed)
    movies = loaded.catalogue_ids.numpy()
    users = np.array([str(u).encode() for u in range(1, num_users + 1)] + [b"unknown-user"])
    recommend = [
        {"user_id": tf.constant(rng.choice(users, 1)), "k": tf.constant(k, tf.int32)}
        for _ in range(size)
    ]
    default = [
        {
            "user_id": tf.constant(rng.choice(users, batch)),
            "movie_id": tf.constant(rng.choice(movies, batch)),
        }
        for _ in range(size)
    ]
    return {"recommend": recommend, "serving_default": default}


def same(got: dict, expected: dict) -> bool:
    return all(np.array_equal(got[name].numpy(), value) for name, value in expected.items())


def load(function, requests: list, expected: list, threads: int, seconds: float) -> dict:
    """Runs `threads` threads calling `function` for `seconds`; returns the row of the table."""
    latencies = [[] for _ in range(threads)]
    errors = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(index):
        position = index * 7919  # each thread starts at another request of the pool
        barrier.wait()
        while not stop.is_set():
            i = position % len(requests)
            start = time.perf_counter()
            try:
                out = function(**requests[i])
                ok = same(out, expected[i])
            except Exception:  # noqa: BLE001  (counted, never fatal: this is a load test)
                ok = False
            latencies[index].append(time.perf_counter() - start)
            errors[index] += not ok
            position += 1

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    rss_start = rss_mb()
    barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {
        "threads": threads,
        "requests/s": len(merged) / elapsed,
        "p50 ms": float(np.percentile(merged, 50)),
        "p99 ms": float(np.percentile(merged, 99)),
        "errors": int(sum(errors)),
        "requests": int(len(merged)),
        "RSS start MB": rss_start,
        "RSS end MB": rss_mb(),
    }


COLUMNS = ("signature", "threads", "requests/s", "p50 ms", "p99 ms", "errors", "requests",
           "RSS start MB", "RSS end MB")  # fmt: skip


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_rows(rows: list[dict]) -> str:
    """A markdown table of the rows."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="an existing export (default: build one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per signature and N")
    parser.add_argument("--threads", default="1,4,8,16")
    parser.add_argument("--batch", type=int, default=64, help="pairs per serving_default call")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pool", type=int, default=256, help="distinct requests per signature")
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--movies", type=int, default=1682)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if args.model_dir:
            path = latest_export(args.model_dir)
        else:
            path = build_export(tmp, args.users, args.movies)
        loaded = tf.saved_model.load(str(path))
        print(f"export {path} ready in {time.perf_counter() - started:.0f} s")
        rss_loaded = rss_mb()
        requests = make_requests(loaded, args.pool, args.batch, args.k, args.users)
        rows = []
        for name in ("recommend", "serving_default"):
            function = loaded.signatures[name]
            expected = [  # serial answers (also the warmup: every request traced and run once)
                {key: value.numpy() for key, value in function(**r).items()} for r in requests[name]
            ]
            for threads in (int(t) for t in args.threads.split(",")):
                row = load(function, requests[name], expected, threads, args.seconds)
                rows.append({"signature": name, **row})
                print(f"  {name} x {threads} threads: {row['requests/s']:,.0f} req/s", flush=True)
    print(
        f"\nServing load ({args.seconds:g} s per row; recommend: 1 user, k={args.k}; "
        f"serving_default: {args.batch} pairs; RSS after loading: {rss_loaded:,.0f} MB; "
        f"errors = exceptions + answers differing from the serial ones)\n"
    )
    print(format_rows(rows))
    emit("serving_load", {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()

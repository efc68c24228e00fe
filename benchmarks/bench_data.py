"""Benchmark of tfrec.data: ml-100k load + leave-one-out speed, and negative-sampling throughput.

Why this exists: the data layer sits under every training run, so its speed is tracked:
parsing ml-100k from the cache and splitting it must be near-instant, and one epoch of
``pointwise_dataset`` over 10M interactions with 4 negatives each should take under 20 s.

Run: ``.venv/bin/python benchmarks/bench_data.py`` (ml-100k is fetched first if not cached;
``--skip-movielens`` runs only the synthetic part).
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import argparse
import resource
import time

import numpy as np
import tensorflow as tf

from tfrec import data
from tfrec.data._arrays import unique_sorted


def _cpu_seconds() -> float:
    """CPU time used by this process (all threads): robust to other load on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_movielens(repeats: int) -> None:
    """Times parsing cached ml-100k into a MovieLens and leave-one-out splitting it."""
    data.fetch_movielens("100k")  # not timed: a no-op when the cache entry is complete
    seconds, ml = _best_time(lambda: data.load_movielens("100k"), repeats)
    rows = ml.num_ratings
    print(f"ml-100k load from cache ({ml.source}): {rows:,} ratings in {seconds:.3f} s "
          f"= {rows / seconds:,.0f} rows/s")  # fmt: skip
    seconds, split = _best_time(lambda: data.leave_one_out(ml.ratings), repeats)
    sizes = " / ".join(f"{len(part['user_id']):,}" for part in split)
    print(f"ml-100k leave_one_out ({sizes}): {seconds:.3f} s = {rows / seconds:,.0f} rows/s")


def synthetic_positives(num_users: int, num_items: int, interactions: int, seed: int = 0):
    """Exactly ``interactions`` distinct (user, item) pairs: uniform users, power-law items.

    Item popularity is Zipf-like (p(rank r) proportional to 1/r); duplicates are drawn again.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_items + 1)
    weights /= weights.sum()
    keys = np.zeros(0, np.int64)
    draws, accepted = interactions, 1.0
    while keys.size < interactions:
        items = rng.choice(num_items, size=draws, p=weights)
        users = rng.integers(0, num_users, size=draws)
        before = keys.size
        keys = unique_sorted(np.concatenate([keys, users * num_items + items]))
        accepted = max((keys.size - before) / draws, 0.01)  # share of draws that were new
        draws = max(1000, int((interactions - keys.size) / accepted * 1.1))
    keys = np.sort(rng.choice(keys, size=interactions, replace=False))
    return keys // num_items, keys % num_items


def bench_sampling(args: argparse.Namespace) -> None:
    """Times one epoch of pointwise_dataset (positives + 4 sampled negatives each).

    Reported twice: consumed inside TensorFlow (``Dataset.reduce``, as a compiled training
    loop consumes it) and iterated batch by batch from Python (adds eager per-batch overhead).
    """
    start = time.perf_counter()
    users, items = synthetic_positives(args.users, args.items, args.interactions)
    print(f"synthetic set: {users.size:,} distinct interactions ({args.users:,} users x "
          f"{args.items:,} items, power-law popularity), built in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    positives = {"user_index": users, "movie_index": items}
    movie_ids = np.arange(args.items).astype(str)
    for distribution in args.distributions:
        start = time.perf_counter()
        seen = data.SeenItems.from_pairs(users, items, args.users, args.items)
        sampler = data.NegativeSampler(seen, distribution, seed=0)
        built = time.perf_counter() - start
        dataset = data.pointwise_dataset(
            positives, sampler, args.negatives, args.batch_size, seed=0, movie_ids=movie_ids
        )
        start, cpu = time.perf_counter(), _cpu_seconds()
        rows = int(dataset.reduce(np.int64(0), _count_rows))
        in_graph, graph_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        start, cpu = time.perf_counter(), _cpu_seconds()
        for _ in dataset:  # what an eager Python loop pays on top: one call per batch
            pass
        in_python, python_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        negatives = rows - users.size
        print(f"{distribution} sampler (built in {built:.1f} s), one epoch = {rows:,} rows, "
              f"{negatives:,} negatives, batch {args.batch_size}:\n"
              f"  consumed in-graph (Dataset.reduce): {in_graph:.1f} s wall "
              f"({graph_cpu:.1f} s CPU) = {negatives / in_graph:,.0f} negatives/s\n"
              f"  iterated from Python:               {in_python:.1f} s wall "
              f"({python_cpu:.1f} s CPU) = {negatives / in_python:,.0f} negatives/s")  # fmt: skip


def _count_rows(total, batch):
    return total + tf.shape(batch["label"], out_type=tf.int64)[0]


def main(argv: list[str] | None = None) -> None:
    """Parses options and runs the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--distributions",
        nargs="+",
        default=["uniform", "popularity"],
        choices=data.sampling.DISTRIBUTIONS,
    )
    args = parser.parse_args(argv)
    if not args.skip_movielens:
        bench_movielens(args.repeats)
    bench_sampling(args)


if __name__ == "__main__":
    main()

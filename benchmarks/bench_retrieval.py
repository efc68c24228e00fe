"""Benchmark of the retrieval indexes on synthetic clustered catalogues.

For each catalogue size (d=64 unit vectors from a Gaussian mixture, like trained two-tower
embeddings), reports per index: build time, memory, recall@k against exact search, and
queries/s with p99 latency for single queries and for batches. Indexes: exact in-graph
`BruteForce`, in-graph `IVFIndex` at several nprobe, FAISS IVF-Flat and HNSW, and ScaNN
(`ScannIndex`: tree with sqrt(N) leaves + asymmetric hashing + exact reorder) at several
shares of leaves searched. Memory is the index's own bytes (FAISS and ScaNN: serialized size).

    .venv/bin/python benchmarks/bench_retrieval.py --sizes 10000,100000,1000000

Target: the in-graph IVF reaches recall@10 >= 0.95 at >= 10x the exact in-graph single-query
rate on 10^6 items. Keep `--sizes` small in tests and CI.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.evaluation import format_table
from tfrec.retrieval import BruteForce, FaissIndex, IVFIndex, ScannIndex, clustered_embeddings


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k that the index returned."""
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=1).sum(axis=1)
    return float(np.mean(hits / exact.shape[1]))


def timed(fn, inputs, repeats: int) -> dict:
    """Latency percentiles (ms) of `fn` over `repeats` calls cycling through `inputs`."""
    fn(inputs[0])  # warm-up (tracing, caches)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(inputs[i % len(inputs)])
        times.append(time.perf_counter() - start)
    times = np.asarray(times) * 1e3
    return {
        "mean": float(times.mean()),
        "p50": float(np.percentile(times, 50)),
        "p99": float(np.percentile(times, 99)),
    }


def measure(name, search, queries, exact, k, batch, repeats, build_s, nbytes) -> dict:
    """One table row: recall on all queries, single-query and batch speed."""
    found = np.concatenate(
        [search(queries[i : i + batch])[1] for i in range(0, len(queries), batch)]
    )
    single = timed(lambda q: search(q), [queries[i : i + 1] for i in range(len(queries))], repeats)
    batches = [queries[i : i + batch] for i in range(0, len(queries) - batch + 1, batch)]
    many = timed(lambda q: search(q), batches, max(3, repeats // 20))
    return {
        "index": name,
        f"recall@{k}": recall(np.asarray(found), exact),
        "1-query qps": 1e3 / single["mean"],
        "1-query p99 ms": single["p99"],
        f"batch{batch} qps": batch * 1e3 / many["mean"],
        f"batch{batch} p99 ms": many["p99"],
        "build s": build_s,
        "memory MB": nbytes / 2**20,
    }


def tf_search(index, k, nprobe=None):
    """A compiled search function ``queries -> (scores, indices)`` as numpy."""
    dim = index.dim
    if nprobe is None:
        fn = tf.function(
            lambda q: index.search(q, k), input_signature=[tf.TensorSpec([None, dim], tf.float32)]
        )
    else:
        fn = tf.function(
            lambda q: index.search(q, k, nprobe),
            input_signature=[tf.TensorSpec([None, dim], tf.float32)],
        )
    return lambda q: tuple(t.numpy() for t in fn(tf.constant(q)))


def scann_rows(items, queries, exact, args) -> list[dict]:
    """ScaNN rows: one build (default settings), searched at each share of its leaves."""
    k, batch, repeats = args.k, args.batch, args.repeats
    start = time.perf_counter()
    index = ScannIndex.build(items, threads=args.threads)
    build = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as scratch:
        saved = index.save(Path(scratch) / "scann")
        nbytes = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
    leaves = index.num_leaves
    rows = []
    for share in args.scann_leaves:
        searched = max(1, round(share * leaves))
        search = functools.partial(index.search, k=k, num_leaves_to_search=searched)
        name = f"scann leaves={searched}/{leaves} reorder={max(100, 10 * k)}"
        rows.append(measure(name, search, queries, exact, k, batch, repeats, build, nbytes))
    return rows


def run_size(n, args) -> list[dict]:
    """All index rows for one catalogue size."""
    items, queries = clustered_embeddings(n, args.dim, num_queries=args.queries, seed=args.seed)
    k, batch, repeats = args.k, args.batch, args.repeats
    rows = []
    start = time.perf_counter()
    exact_index = BruteForce(items)
    build = time.perf_counter() - start
    exact_fn = tf_search(exact_index, k)
    exact = np.concatenate(
        [exact_fn(queries[i : i + batch])[1] for i in range(0, len(queries), batch)]
    )
    rows.append(
        measure("tf brute force", exact_fn, queries, exact, k, batch, repeats, build, items.nbytes)
    )
    nlist = args.nlist or int(round(2 * np.sqrt(n)))
    start = time.perf_counter()
    ivf = IVFIndex(items, nlist=nlist, seed=args.seed)
    build = time.perf_counter() - start
    for nprobe in args.nprobe:
        rows.append(
            measure(
                f"tf ivf nlist={nlist} nprobe={nprobe}",
                tf_search(ivf, k, nprobe),
                queries,
                exact,
                k,
                batch,
                repeats,
                build,
                ivf.nbytes,
            )
        )
    if args.faiss:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        for kind, options in (("ivf_flat", {"nlist": nlist}), ("hnsw", {})):
            start = time.perf_counter()
            index = FaissIndex.build(items, kind=kind, seed=args.seed, **options)
            build = time.perf_counter() - start
            nbytes = faiss.serialize_index(index.index).nbytes
            settings = args.nprobe if kind == "ivf_flat" else args.ef_search
            for value in settings:
                key = "nprobe" if kind == "ivf_flat" else "ef_search"
                search = functools.partial(index.search, k=k, **{key: value})
                rows.append(
                    measure(
                        f"faiss {kind} {key}={value}",
                        search,
                        queries,
                        exact,
                        k,
                        batch,
                        repeats,
                        build,
                        nbytes,
                    )
                )
    if args.scann:
        rows.extend(scann_rows(items, queries, exact, args))
    exact_qps = rows[0]["1-query qps"]
    for row in rows:
        row["speed-up"] = row["1-query qps"] / exact_qps
    return rows


def main(argv=None) -> dict:
    """Runs the benchmark and prints one table per size; returns the rows by size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated catalogue sizes")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=300, help="timed single queries")
    parser.add_argument("--nlist", type=int, default=None, help="default 2 sqrt(N)")
    parser.add_argument("--nprobe", default="16,24,32,48")
    parser.add_argument("--ef-search", default="32,64")
    parser.add_argument("--no-faiss", dest="faiss", action="store_false")
    parser.add_argument(
        "--scann-leaves", default="0.03,0.05,0.1", help="shares of ScaNN's leaves searched"
    )
    parser.add_argument("--no-scann", dest="scann", action="store_false")
    parser.add_argument("--threads", type=int, default=2, help="FAISS and ScaNN threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.nprobe = [int(v) for v in args.nprobe.split(",")]
    args.ef_search = [int(v) for v in args.ef_search.split(",")]
    args.scann_leaves = [float(v) for v in args.scann_leaves.split(",")]
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        rows = run_size(size, args)
        results[size] = rows
        print(
            f"\n{size:,} items, d={args.dim}, k={args.k}, {args.queries} queries "
            f"(speed-up = single-query rate / exact in-graph rate)"
        )
        table = {row["index"]: {k: v for k, v in row.items() if k != "index"} for row in rows}
        print(format_table(table, digits=3), flush=True)
    return results


if __name__ == "__main__":
    main()

"""Throughput of batch recommendations (`tfrec recommend --all-users`) from an export.

Why this exists: a nightly job writes every user's top-k; its cost is users per second through
the export's ``recommend`` signature (the same SavedModel TF Serving runs) plus the writing.
Two sets: MovieLens-100k (943 users x 1,682 movies, the `make run` DeepFM shape) and a
generated set of 10^5 users (`tfrec.data.synthetic`, 1,000 movies), each with a DeepFM trained
for one epoch (throughput does not depend on how well it is trained), exported, and written to
CSV (and Parquet) with k = 10 at a few batch sizes. Peak memory during each run (the process's
resident set, export loaded; reset before each run) shows it stays bounded by one batch, not by
the number of users.

Run: ``.venv/bin/python benchmarks/bench_batch_recs.py`` (``--quick``: smaller generated set).
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import argparse
import tempfile
import time
from pathlib import Path

from _bench_utils import emit, machine_info, peak_rss_mb, table

from tfrec.data import SplitData, load_movielens
from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import build_model, preset
from tfrec.serving import ServedExport, export_model, recommend_all
from tfrec.training import fit


def exported(ml, hparams: dict, directory: Path, name: str) -> tuple[Path, float]:
    """A DeepFM fit for one epoch on `ml` (leave-one-out), exported as of all ratings."""
    data = SplitData.from_movielens(ml)
    model = build_model("deepfm", data, **hparams)
    start = time.perf_counter()
    fit(model, data, epochs=1, batch_size=4096, num_negatives=4, verbose=0, patience=1)
    print(f"{name}: trained one epoch in {time.perf_counter() - start:.0f} s")
    path = export_model(model, data, as_of="all", base_dir=directory, name=name, warmup=False)
    return path, time.perf_counter() - start


def reset_peak_rss() -> bool:
    """Resets this process's peak RSS (Linux: ``5`` to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float:
    """VmHWM: the peak resident memory since the last reset, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def measure(path: Path, directory: Path, runs, k: int) -> dict:
    """One `recommend_all` per (batch size, format) of `runs`."""
    served = ServedExport(path)
    users = served.users()
    served.recommend(users[:8], k)  # traces the signature once, outside the timings
    rows = {}
    for batch_size, suffix in runs:
        out = directory / f"recs-{batch_size}.{suffix}"
        reset = reset_peak_rss()
        report = recommend_all(served, out, k=k, batch_size=batch_size, progress=False)
        rows[f"{suffix}, batch {batch_size}"] = {
            "users": report.users,
            "rows": report.rows,
            "seconds": report.seconds,
            "users/s": report.users_per_second,
            "MB": out.stat().st_size / 2**20,
            "peak RSS MB" + ("" if reset else " (process)"): peak_rss_since_reset_mb(),
        }
        out.unlink()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^4 generated users")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    print(machine_info())
    chosen = preset("movielens-100k")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path, _ = exported(load_movielens("100k"), chosen.hparams, tmp, "ml100k")
        runs = [(64, "csv"), (256, "csv"), (943, "csv"), (256, "parquet")]
        results["ml-100k"] = measure(path, tmp, runs, args.k)
        print("\nml-100k (943 users x 1,682 movies, DeepFM 32 / 128-64):")
        print(table(results["ml-100k"], digits=1))

        users = 10_000 if args.quick else 100_000
        start = time.perf_counter()
        ml = synthetic_movielens(num_users=users, num_movies=1000, ratings_per_user=10, seed=0)
        print(f"\ngenerated {ml.num_ratings:,} ratings in {time.perf_counter() - start:.0f} s")
        small = {"embedding_dim": 16, "dnn_units": [64]}
        path, _ = exported(ml, small, tmp, "scale")
        label = f"generated {users:,} users"
        runs = [(256, "csv"), (1024, "csv"), (1024, "parquet")]
        results[label] = measure(path, tmp, runs, args.k)
        print(f"\n{label} x 1,000 movies (DeepFM 16 / 64):")
        print(table(results[label], digits=1))
    emit("batch_recs", results)


if __name__ == "__main__":
    main()

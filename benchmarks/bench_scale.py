"""Scaling table: DeepFM training cost vs interactions and memory vs ids, on streamed data.

Exists to show how tfrec's costs grow: data written by `tfrec.data.scale` (MovieLens-like,
8 fields) is streamed from sharded TFRecords into DeepFM (embedding 16, DNN 400-400-400, towers
from `tfrec.features.scale_towers`, the other hyperparameters the registry's defaults).
Each configuration runs in its own process so its peak RSS is its own. Interactions vary at
fixed ids, and ids (per id field: users and movies) vary at fixed interactions.

A full epoch of 20M rows would take far longer than the benchmark budget, so training runs a
fixed number of steps per size and the epoch time is extrapolated (rows / measured ex/s); the
input pipeline alone does read every row. Across id counts, tf.keras' Adam is compared with
tfrec's `LazyAdam` and with Adagrad: Adam decays its two slots and moves every row densely on
every step (O(ids) work per step even for sparse embedding gradients), while the other two
touch only the rows in the batch.

Usage:
  python benchmarks/bench_scale.py              # 1M / 5M / 20M rows, 10^4 / 10^5 / 10^6 ids
  python benchmarks/bench_scale.py --quick      # tiny sizes, about a minute
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench_utils import JSON_PREFIX, StepTimer, emit, peak_rss_mb, scale_deepfm, table

from tfrec.data import scale
from tfrec.optimizers import get_optimizer

DNN = [400, 400, 400]


def child(args) -> dict:
    """One configuration: write the data, read it all, train a fixed number of steps."""
    schema = scale.make_schema("movielens", rows=args.rows, ids=args.ids, seed=0)
    row = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        start = time.perf_counter()
        scale.write_dataset(schema, tmp)
        row["write s"] = time.perf_counter() - start
        row["disk MB"] = sum(p.stat().st_size for p in Path(tmp).glob("part-*")) / 1e6
        start = time.perf_counter()
        for _ in scale.read_dataset(tmp, args.batch, shuffle=True):
            pass
        row["read all s"] = time.perf_counter() - start
        rss_before = peak_rss_mb()
        model, rename = scale_deepfm(schema, 16, DNN)
        learning_rate = 0.05 if args.optimizer == "adagrad" else 1e-3
        model.compile(get_optimizer(args.optimizer, learning_rate))
        timer = StepTimer()
        ds = scale.read_dataset(tmp, args.batch, shuffle=True, rename=rename).repeat()
        model.fit(ds, steps_per_epoch=args.steps, epochs=3, callbacks=[timer], verbose=0)
        rate = args.steps * args.batch / min(timer.epoch_seconds[1:])
    params = sum(v.shape.num_elements() for v in model.trainable_variables)
    row.update(
        {
            "train ex/s": rate,
            "epoch s (extrapolated)": args.rows / rate,
            "params M": params / 1e6,
            "peak RSS MB": peak_rss_mb(),
            "model RSS MB": peak_rss_mb() - rss_before,
        }
    )
    emit("scale", row)
    return row


def run_config(args, rows: int, ids: int, optimizer: str) -> dict:
    """Runs `child` in a fresh process and returns its row."""
    cmd = [sys.executable, __file__, "--child", "--rows", str(rows), "--ids", str(ids)]
    cmd += ["--optimizer", optimizer, "--steps", str(args.steps), "--batch", str(args.batch)]
    if args.tmp:
        cmd += ["--tmp", args.tmp]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
    for line in out.stdout.splitlines():
        if line.startswith(JSON_PREFIX):
            return json.loads(line[len(JSON_PREFIX) :])["data"]
    raise RuntimeError(f"bench_scale child failed ({rows} rows, {ids} ids):\n{out.stderr[-3000:]}")


def main(argv=None) -> None:
    """Runs the grid (each point in its own process) and prints the scaling table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows-list", default="1000000,5000000,20000000")
    parser.add_argument("--ids-list", default="10000,100000,1000000")
    parser.add_argument("--fixed-ids", type=int, default=100_000)
    parser.add_argument("--fixed-rows", type=int, default=1_000_000)
    parser.add_argument("--optimizers", default="adam,lazy_adam,adagrad")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per epoch (x2)")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--tmp", default=None, help="where data is written (default: /tmp)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ids", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", default="adam", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.quick:
        args.rows_list, args.ids_list = "100000,300000", "1000,10000,100000"
        args.fixed_ids, args.fixed_rows, args.steps, args.batch = 10_000, 100_000, 8, 1024
        args.optimizers = "adam"
    rows_list = [int(x) for x in args.rows_list.split(",")]
    ids_list = [int(x) for x in args.ids_list.split(",")]
    grid = [(r, args.fixed_ids) for r in rows_list] + [
        (args.fixed_rows, i)
        for i in ids_list
        if i != args.fixed_ids or args.fixed_rows not in rows_list
    ]
    results = {}
    for optimizer in args.optimizers.split(","):
        for rows, ids in grid if optimizer == "adam" else [(args.fixed_rows, i) for i in ids_list]:
            name = f"{rows / 1e6:g}M rows, {ids:,} ids, {optimizer}"
            results[name] = run_config(args, rows, ids, optimizer)
            print(f"{name}: done", flush=True)
    print(
        f"\nDeepFM 16 / 400-400-400, 8 fields, batch {args.batch}, {args.steps} steps per timed "
        "epoch (best of 2 after a warm-up epoch); epoch time extrapolated from ex/s"
    )
    print(table(results, digits=1))
    emit("scale_table", results)


if __name__ == "__main__":
    main()

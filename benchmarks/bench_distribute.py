"""Distributed training throughput (issue 13): one process, 1 and 2 multi-worker workers, and
2 workers against 2 parameter servers, on the `tfrec.data.scale` data set; then a worked
estimate of the time to train DeepFM on 10^9 interactions on N GPU workers.

Exists to put numbers on what `--strategy` costs and buys. Every configuration is a set of
real processes on 127.0.0.1 (each with its own TF_CONFIG), training DeepFM (embedding 16, DNN
400-400-400, LazyAdam) with `tfrec.training.records.fit_records` on the same TFRecord shards:
multi-worker workers read their own files, parameter-server workers stream all files.

Read the 2-core numbers for what they are: every process of a "cluster" shares the same two
cores, so more workers cannot add compute here; what the table shows is each strategy's
overhead (collectives, parameter-server round trips) on top of the same arithmetic. The
estimate then separates the measured per-step costs into dense arithmetic (scaled by an
assumed GPU rate), the rest of the step (embedding gathers and updates, optimizer, framework;
scaled by an assumed memory-bandwidth ratio, floored by kernel-launch overhead) and
communication (gradient bytes over an assumed network), and states every assumption.

Usage:
  python benchmarks/bench_distribute.py            # ~262k rows, 3 x 20 steps per config
  python benchmarks/bench_distribute.py --quick    # tiny, a smoke test
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench_utils import JSON_PREFIX, StepTimer, emit, machine_info, matmul_gflops, mlp_flops, table

from tfrec.data import scale

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EMBEDDING, DNN = 16, [400, 400, 400]

# Assumptions of the GPU estimate (stated in the output).
GPU_DENSE_TFLOPS = 40.0  # A100-class bf16 matmuls at ~13% of the 312 TFLOP/s peak: small layers
GPU_MEMORY_RATIO = 50.0  # HBM (~1.5 TB/s, ~30% on random row gathers) vs 2 cores' DRAM share
GPU_STEP_FLOOR = 0.002  # s per step: ~200 kernels at ~10 us launch + sync, whatever the batch
NETWORK_GBPS = 100.0  # between workers (Gbit/s); NVLink within a node is ~20x faster
GPU_BATCH = 8192  # per GPU


def build(schema):
    from tfrec.features import scale_towers
    from tfrec.models import DeepFM

    query, candidate, _ = scale_towers(schema, EMBEDDING)
    return DeepFM(query, candidate, dnn_units=DNN, dropout=0.0, batch_norm=False,
                  retrieval_weight=0.0, task="ranking", history_length=0, l2=0.0)  # fmt: skip


def child(args) -> None:
    """One training process of a configuration (a worker, a chief, or the lone process)."""
    from tfrec.features import scale_towers
    from tfrec.training.distribute import is_chief, strategy_from_name
    from tfrec.training.records import fit_records

    schema = scale.load_schema(args.data)
    strategy = strategy_from_name(args.strategy, min_shard_bytes=256 << 10)
    timer = StepTimer()
    history = fit_records(
        lambda: build(schema), args.data, scale_towers(schema, EMBEDDING)[2], strategy=strategy,
        epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch,
        learning_rate=1e-3, optimizer="lazy_adam", callbacks=[timer], verbose=0,
    )  # fmt: skip
    model = history.model
    dense = sum(v.shape.num_elements() for v in model.trainable_variables if "dnn" in v.name)
    if is_chief(strategy):
        emit("run", {"epoch_seconds": timer.epoch_seconds, "loss": history.history["loss"],
                     "replicas": strategy.num_replicas_in_sync, "dense_params": dense})  # fmt: skip


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(args, strategy, tf_config=None, server=False):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if server:
        cmd = [sys.executable, "-m", "tfrec.cluster"]
    else:
        cmd = [sys.executable, __file__, "--child", "--strategy", strategy, "--data", args.data,
               "--steps", str(args.steps), "--batch", str(args.batch),
               "--epochs", str(args.epochs)]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=HERE, start_new_session=True)  # fmt: skip


def run_config(args, name: str) -> dict:
    """Starts one configuration's processes, waits for its trainers, returns the chief's run."""
    servers, trainers = [], []
    if name == "1 process":
        trainers.append(launch(args, "default"))
    elif name.startswith("multi_worker"):
        count = int(name.split("x")[1])
        cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(count)]}
        for i in range(count):
            task = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            trainers.append(launch(args, "multi_worker", task))
    else:
        ports = free_ports(5)
        cluster = {"chief": [f"127.0.0.1:{ports[0]}"],
                   "worker": [f"127.0.0.1:{p}" for p in ports[1:3]],
                   "ps": [f"127.0.0.1:{p}" for p in ports[3:]]}  # fmt: skip
        for kind in ("worker", "ps"):
            for i in range(2):
                task = {"cluster": cluster, "task": {"type": kind, "index": i}}
                servers.append(launch(args, kind, task, server=True))
        trainers.append(
            launch(
                args,
                "parameter_server",
                {"cluster": cluster, "task": {"type": "chief", "index": 0}},
            )
        )
    start = time.perf_counter()
    try:
        outputs = [t.communicate(timeout=1800) for t in trainers]
    finally:
        for process in servers + trainers:
            if process.poll() is None:
                process.kill()
                process.wait()
    wall = time.perf_counter() - start
    for trainer, (_, err) in zip(trainers, outputs, strict=True):
        if trainer.returncode != 0:
            raise RuntimeError(f"{name}: exit {trainer.returncode}\n{err[-3000:]}")
    runs = [json.loads(line[len(JSON_PREFIX) :])["data"] for out, _ in outputs
            for line in out.splitlines() if line.startswith(JSON_PREFIX)]  # fmt: skip
    return {**runs[0], "wall": wall}


def summarize(name: str, run: dict, args) -> dict:
    measured = run["epoch_seconds"][1:]  # the first epoch includes tracing
    step = statistics.median(measured) / args.steps
    global_batch = args.batch * (run["replicas"] if not name.startswith("parameter") else 1)
    return {
        "global batch": global_batch,
        "s/step": step,
        "examples/s": global_batch / step,
        "loss first->last": f"{run['loss'][0]:.4f}->{run['loss'][-1]:.4f}",
        "wall s": run["wall"],
    }


def estimate(rows: dict, single_step: float, dense_params: int, fields: int, args) -> str:
    """Time to train DeepFM on 10^9 interactions on N GPU workers, from the measured costs."""
    gflops = matmul_gflops()
    forward = mlp_flops(fields * EMBEDDING, DNN)
    step_flops = 3 * forward * args.batch  # forward + backward (two matmuls per layer)
    dense_cpu = step_flops / (gflops * 1e9)
    rest_cpu = max(single_step - dense_cpu, 0.0)
    rest_per_example = rest_cpu / args.batch  # gathers, sparse updates, optimizer, framework
    dense_gpu = 3 * forward * GPU_BATCH / (GPU_DENSE_TFLOPS * 1e12)
    rest_gpu = max(rest_per_example * GPU_BATCH / GPU_MEMORY_RATIO, GPU_STEP_FLOOR)
    compute = dense_gpu + rest_gpu
    dense_bytes = 4 * dense_params  # all-reduced every step
    sparse_bytes = 4 * GPU_BATCH * fields * (EMBEDDING + 1 + 1)  # rows + ids, all-gathered
    bandwidth = NETWORK_GBPS * 1e9 / 8
    lines = [
        f"Measured (this machine): matmul peak {gflops:.0f} GFLOP/s; one-process step at "
        f"batch {args.batch} = {single_step:.3f} s, of which dense arithmetic ~{dense_cpu:.3f} s "
        f"({3 * forward / 1e6:.2f} MFLOP/example fwd+bwd) and the rest {rest_cpu:.3f} s "
        f"({1e6 * rest_per_example:.1f} us/example: embedding gathers and row updates, "
        "optimizer, input, framework).",
        f"Assumed per GPU (A100-class): dense {GPU_DENSE_TFLOPS:.0f} TFLOP/s effective (bf16, "
        f"small layers), the rest {GPU_MEMORY_RATIO:.0f}x faster than 2 CPU cores (HBM vs "
        f"DRAM) but at least {1e3 * GPU_STEP_FLOOR:.0f} ms/step (kernel launches), batch "
        f"{GPU_BATCH} per GPU; {NETWORK_GBPS:.0f} Gbit/s between workers; ring all-reduce of "
        f"{dense_bytes / 1e6:.1f} MB of dense gradients and all-gather of {sparse_bytes / 1e6:.1f}"
        " MB of embedding-row gradients per worker per step, not overlapped with compute.",
        f"-> GPU step compute {1e3 * compute:.1f} ms ({1e3 * dense_gpu:.2f} dense + "
        f"{1e3 * rest_gpu:.1f} rest).",
    ]
    table_rows = {}
    for n in (1, 2, 4, 8, 16, 32):
        comm = 0.0
        if n > 1:
            comm = 2 * (n - 1) / n * dense_bytes / bandwidth + (n - 1) * sparse_bytes / bandwidth
        step = compute + comm
        rate = n * GPU_BATCH / step
        table_rows[f"N={n}"] = {
            "step ms": 1e3 * step,
            "comm ms": 1e3 * comm,
            "examples/s": rate,
            "hours per 10^9": 1e9 / rate / 3600,
            "efficiency": compute / step,
        }
    lines.append(table(table_rows, digits=2))
    lines.append(
        "The all-gather of sparse gradients grows with N (each worker receives every worker's "
        "rows): past ~8 workers it dominates, which is where parameter servers (rows sent "
        "only to the servers holding them) or larger per-GPU batches take over."
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2048, help="per worker")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.quick:
        args.steps, args.batch, args.epochs = 3, 256, 2
    info = machine_info()
    print(f"machine: {info}")
    rows = args.batch * args.steps * 2 * 3  # at least one pass per worker-epoch
    schema = scale.make_schema("movielens", rows=max(rows, 65536), ids=100_000, seed=0,
                               chunk_rows=1 << 16, block_rows=4096)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        scale.write_dataset(schema, tmp, shards=4)
        args.data = tmp
        results, raw = {}, {}
        for name in ("1 process", "multi_worker x1", "multi_worker x2", "parameter_server 2w+2ps"):
            print(f"running {name} ...", flush=True)
            raw[name] = run_config(args, name)
            results[name] = summarize(name, raw[name], args)
    print(f"\nDeepFM (embedding {EMBEDDING}, DNN {DNN}, LazyAdam) on {schema['rows']:,} scale "
          f"rows (movielens mode, 10^5 ids per id field), batch {args.batch} per worker, "
          f"{args.steps} steps x {args.epochs} epochs (first excluded), load average "
          f"{info['load_average']} at start:")  # fmt: skip
    print(table(results, digits=3))
    single = results["1 process"]["s/step"]
    fields = sum(1 for c in schema["columns"].values() if c["side"] != "label")
    print("\n" + estimate(results, single, raw["1 process"]["dense_params"], fields, args))
    emit("distribute", {"results": results, "machine": info})


if __name__ == "__main__":
    main()

"""Small helpers shared by the tfrec benchmarks: machine facts, peak memory, timing, tables.

Exists so every benchmark reports the same machine description and measures the same way
(warm-up excluded, medians of short repeats, which survive a noisy shared machine better than
one long run), and so `run_all.py` can collect results from the `BENCH_JSON:` lines they print.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time

import tensorflow as tf

JSON_PREFIX = "BENCH_JSON: "


def machine_info() -> dict:
    """Cores, memory, CPU model and flags that matter for matmuls, TF version."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory, 1),
        "simd": " ".join(f for f in wanted if f in flags) or "none",
        "tensorflow": tf.__version__,
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(function, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall seconds of `function()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_seconds(m: int, k: int, n: int, dtype=tf.float32, repeats: int = 10) -> float:
    """Best wall seconds of one ``[m, k] x [k, n]`` matmul in `dtype` over `repeats` runs.

    The best, not the median: it is a ceiling other rates are compared with, and on a shared
    machine a median would put model throughput above "peak".
    """
    a = tf.cast(tf.random.normal([m, k]), dtype)
    b = tf.cast(tf.random.normal([k, n]), dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    product(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(dtype=tf.float32, shapes=((2048, 2048, 2048), (4096, 400, 400))) -> float:
    """The machine's matmul GFLOP/s in `dtype`: the best over square and DNN-shaped products."""
    return max(2 * m * k * n / matmul_seconds(m, k, n, dtype) / 1e9 for m, k, n in shapes)


def dense_stack_bound(units, rows: int = 8192) -> float:
    """Rows/s a chain of dense layers (widths `units`, ending in 1) could reach on this machine:
    each layer's ``[rows, in] x [in, out]`` matmul timed at its best, elementwise work ignored."""
    sizes = [*units, 1]
    seconds = sum(matmul_seconds(rows, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return rows / seconds


def mlp_flops(input_dim: int, units) -> int:
    """Forward FLOPs (2 per multiply-add) of a dense stack ending in one output unit."""
    sizes = [input_dim, *units, 1]
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


class StepTimer(tf.keras.callbacks.Callback):
    """Wall time of each epoch (the first one includes tracing, so report the later ones)."""

    def __init__(self):
        super().__init__()
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)


def emit(name: str, payload) -> None:
    """Prints one machine-readable result line for run_all.py."""
    print(JSON_PREFIX + json.dumps({"name": name, "data": payload}, default=float), flush=True)


def table(rows: dict, digits: int = 1) -> str:
    """Aligned text table of {row name: {column: value}} (a markdown-friendly code block)."""
    from tfrec.evaluation import format_table

    return format_table(rows, digits=digits)

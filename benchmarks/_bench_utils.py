"""Small helpers shared by the tfrec benchmarks: machine facts, peak memory, timing, tables.

Exists so every benchmark reports the same machine description and measures the same way
(warm-up excluded, medians of short repeats, which survive a noisy shared machine better than
one long run), builds its models from the one home of defaults (`tfrec.models`' registry and
the `make run` preset), and so `run_all.py` can collect results from the `BENCH_JSON:` lines
they print.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import platform
import resource
import statistics
import tempfile
import time

import tensorflow as tf

JSON_PREFIX = "BENCH_JSON: "
RUN_PRESET = "movielens-100k"
"""The preset `make run` trains (`tfrec.models.preset`): its model, hyperparameters, budget."""


def make_run():
    """The `make run` configuration: a `tfrec.models.Preset` (model, hparams, train)."""
    from tfrec.models import preset

    return preset(RUN_PRESET)


def make_run_training(**overrides) -> dict:
    """`make run`'s training settings, every default filled in from the registry."""
    from tfrec.models import TRAIN_DEFAULTS

    return {**TRAIN_DEFAULTS, **make_run().train, **overrides}


def load_split(variant: str = "100k"):
    """MovieLens `variant` split leave-one-out if it is cached or reachable, else a synthetic
    943 x 1682 stand-in (benchmarks must run offline too)."""
    from tfrec.data import SplitData, load_movielens

    try:
        return SplitData.from_movielens(load_movielens(variant))
    except Exception as err:  # noqa: BLE001
        from tfrec.data.synthetic import synthetic_movielens

        print(f"(ml-{variant} unavailable: {err}; using synthetic 943 x 1682)")
        ml = synthetic_movielens(num_users=943, num_movies=1682, ratings_per_user=60)
        return SplitData.from_movielens(ml)


def scale_deepfm(schema: dict, embedding_dim: int, dnn_units):
    """DeepFM over a `tfrec.data.scale` schema (towers from `tfrec.features.scale_towers`) and
    the `rename` map `scale.read_dataset` needs; every other hyperparameter is the registry's
    DeepFM default (the scale data has no history feature)."""
    from tfrec.features import scale_towers
    from tfrec.models import DeepFM, model_defaults

    defaults = model_defaults("deepfm")
    query, candidate, rename = scale_towers(schema, embedding_dim)
    model = DeepFM(
        query,
        candidate,
        dnn_units=dnn_units,
        dropout=defaults["dropout"],
        batch_norm=defaults["batch_norm"],
        retrieval_weight=defaults["retrieval_weight"],
        task=defaults["task"],
        history_length=0,
        l2=defaults["l2"],
    )
    return model, rename


class PerPairScoring:
    """A model whose catalogue scoring is its reference path: the whole network on every pair.

    `tfrec.evaluation.CatalogueScorer` scores through ``model.score_all`` /
    ``model.score_gathered``; wrapping the model in this class makes those the base class's
    defaults (`tfrec.models.Recommender`: every (user, item) pair tiled through `score_pairs`),
    so both paths are timed by the same machinery and only the scorer differs.
    """

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, *args, **kwargs):
        return self._model(*args, **kwargs)

    def score_all(self, query, candidates, training=False):
        from tfrec.models import Recommender

        return Recommender.score_all(self._model, query, candidates, training)

    def score_gathered(self, query, candidates, index, training=False):
        from tfrec.models import Recommender

        return Recommender.score_gathered(self._model, query, candidates, index, training)


def catalogue_scorers(model, data, as_of="test", reference_pairs: int = 1 << 15) -> dict:
    """``{"factorised": ..., "reference": ...}`` score functions of `model` on `data`:
    `CatalogueScorer` through the model's own (fast) `score_all`, and through the reference
    per-pair path (`PerPairScoring`, `reference_pairs` pairs per step to bound memory)."""
    from tfrec.evaluation import CatalogueScorer
    from tfrec.features.inputs import ModelInputs

    inputs = ModelInputs.build(model, data, as_of)
    fast = CatalogueScorer(model, inputs)
    reference = CatalogueScorer(PerPairScoring(model), inputs, batch_pairs=reference_pairs)
    return {"factorised": fast, "reference": reference}


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


def interleaved(measures: dict, repeats: int) -> dict:
    """{name: [value per repeat]} of each ``measures[name]()``, run in turns (every measure once
    per repeat), so a noisy neighbour on a shared machine slows every row alike."""
    values = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            values[name].append(measure())
    return values


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


def training_dnn_rates(input_dim: int, units, batch: int, repeats: int = 15) -> dict:
    """Examples/s of a DNN training step's matmul work with nothing else in the graph, and of
    the same DNN as Keras `Dense` layers (bias, relu, loss and gradients; no embeddings, no
    optimizer): the most a full model's step could reach with TensorFlow's own kernels.

    "matmuls only" runs, per layer, the forward product and the two backward products (into
    the weights and into the layer's input, the first layer's included: embeddings train), so
    its FLOPs are exactly `3 * mlp_flops`. Medians over `repeats` interleaved calls, after a
    warm-up."""
    sizes = [input_dim, *units, 1]
    shapes = zip(sizes[:-1], sizes[1:], strict=True)
    weights = [tf.random.normal([a, b], stddev=0.05) for a, b in shapes]
    x = tf.random.normal([batch, input_dim])

    @tf.function
    def matmuls(x):
        activations = [x]
        for w in weights:
            activations.append(tf.matmul(activations[-1], w))
        grad, out = tf.ones_like(activations[-1]), []
        for w, a in zip(reversed(weights), reversed(activations[:-1]), strict=True):
            out.append(tf.matmul(a, grad, transpose_a=True))
            grad = tf.matmul(grad, w, transpose_b=True)
        return [tf.reduce_sum(g[:1]) for g in (*out, grad)]

    dnn = tf.keras.Sequential(
        [tf.keras.layers.Dense(u, activation="relu") for u in units] + [tf.keras.layers.Dense(1)]
    )
    labels = tf.cast(tf.random.uniform([batch, 1]) > 0.5, tf.float32)

    @tf.function
    def keras_dnn(x):
        with tf.GradientTape() as tape:
            logits = dnn(x)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
        return [tf.reduce_sum(g[:1]) for g in tape.gradient(loss, dnn.trainable_variables)]

    def seconds(fn):
        start = time.perf_counter()
        [t.numpy() for t in fn(x)]
        return time.perf_counter() - start

    functions = {"matmuls only": matmuls, "Keras Dense stack": keras_dnn}
    for fn in functions.values():  # warm-up (tracing)
        seconds(fn)
    times = interleaved({k: lambda fn=fn: seconds(fn) for k, fn in functions.items()}, repeats)
    return {name: batch / statistics.median(t) for name, t in times.items()}


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


def op_time_profile(run, steps: int) -> dict:
    """Op time per training step (ms, summed over TensorFlow's compute threads) of one call of
    `run` (which trains `steps` steps), after an unprofiled warm-up call: by op type and by
    layer scope (``grad`` marks the backward pass)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    run()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    by_scope, by_type = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.endswith(":Process"):
                    continue
                op, kind = name.rsplit(":", 1)
                parts = op.split("/")
                grad = parts[0].startswith("gradient_tape")
                scope = "/".join(parts[1:3] if grad else parts[:2])
                by_scope[("grad " if grad else "") + scope] += event.duration_ps / 1e9 / steps
                by_type[kind] += event.duration_ps / 1e9 / steps
    return {
        "total op ms per step": sum(by_type.values()),
        "by op type": {k: round(v, 2) for k, v in by_type.most_common(12)},
        "by layer": {k: round(v, 2) for k, v in by_scope.most_common(15)},
    }

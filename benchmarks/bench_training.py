"""Training and scoring speed of DeepFM on this machine, next to what the hardware can do.

Exists to answer "how fast does tfrec train and score, and what limits it" with numbers from
one run: the machine's matmul GFLOP/s (fp32, bf16), the input pipeline alone vs pipeline +
DeepFM (embedding 16, DNN 400-400-400) at several batch sizes next to a bare Keras model of the
same width (the reference point), Adam with and without XLA, mixed bfloat16 (speed, and quality
on ml-100k with the `make run` hyperparameters for 4 epochs), full
catalogue scoring through the plain and the factorised path, and a per-model summary
(`--model NAME`, one model per process so its peak RSS is its own).

Usage:
  python benchmarks/bench_training.py                      # all sections
  python benchmarks/bench_training.py --quick              # about a minute
  python benchmarks/bench_training.py --sections scoring,quality
  python benchmarks/bench_training.py --model deepfm       # per-model row (run_all.py)
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from _bench_utils import (
    StepTimer,
    dense_stack_bound,
    emit,
    machine_info,
    matmul_gflops,
    median_time,
    mlp_flops,
    peak_rss_mb,
    table,
)

from tfrec.data import scale
from tfrec.models import build_model
from tfrec.models.registry import model_defaults
from tfrec.workflow import RUN_HPARAMS, RUN_TRAIN, load_data, train_model

PAPER = {"embedding_dim": 16, "dnn_units": [400, 400, 400]}


def ranking_data(variant="100k"):
    """MovieLens `variant` if it is cached or reachable, else a synthetic stand-in."""
    try:
        return load_data(variant, history_length=20)
    except Exception as err:  # noqa: BLE001  (benchmarks must run offline too)
        from tfrec.data.synthetic import synthetic_movielens
        from tfrec.training import RankingData

        print(f"(ml-{variant} unavailable: {err}; using synthetic 943 x 1682)")
        ml = synthetic_movielens(num_users=943, num_movies=1682, ratings_per_user=60)
        return RankingData.from_movielens(ml, history_length=20)


def machine(args) -> dict:
    info = machine_info()
    for dtype in (tf.float32, tf.bfloat16):
        info[f"matmul GFLOP/s {dtype.name}"] = round(matmul_gflops(dtype), 1)
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    emit("machine", info)
    return info


def train_rate(model, ds, steps, repeats, jit_adam=False) -> float:
    """Examples/s of `model.fit` over `steps` steps, median of `repeats` epochs after a warm-up."""
    model.compile(tf.keras.optimizers.Adam(1e-3, jit_compile=jit_adam))
    timer = StepTimer()
    batch = next(iter(ds))
    rows = int(tf.shape(batch["label"])[0])
    model.fit(ds.repeat(), steps_per_epoch=steps, epochs=repeats + 1, callbacks=[timer], verbose=0)
    return rows * steps / statistics.median(timer.epoch_seconds[1:])


def plain_keras_rate(fields: int, ids: int, batch: int, steps: int, repeats: int) -> float:
    """Examples/s of the reference point: a bare Keras Embedding + Dense 400-400-400 model of the
    same width on random in-memory ids (no towers, FM or linear term, no input pipeline)."""
    inputs = tf.keras.Input([fields], dtype=tf.int32)
    x = tf.keras.layers.Flatten()(tf.keras.layers.Embedding(ids, 16)(inputs))
    for units in PAPER["dnn_units"]:
        x = tf.keras.layers.Dense(units, activation="relu")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(x))
    model.compile(
        tf.keras.optimizers.Adam(1e-3, jit_compile=False),
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    ids_ = rng.integers(0, ids, (batch * 8, fields), dtype=np.int32)
    labels = rng.integers(0, 2, (batch * 8, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((ids_, labels)).batch(batch).cache().repeat()
    timer = StepTimer()
    model.fit(ds, steps_per_epoch=steps, epochs=repeats + 1, callbacks=[timer], verbose=0)
    return batch * steps / statistics.median(timer.epoch_seconds[1:])


def throughput(args, gflops: dict) -> dict:
    """Pipeline alone vs pipeline + DeepFM on streamed MovieLens-like scale data."""
    schema = scale.make_schema("movielens", rows=args.rows, ids=args.ids, seed=0)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        scale.write_dataset(schema, tmp)
        model_schema_fields = len(schema["columns"]) - 1
        flops = 3 * mlp_flops(model_schema_fields * 16, PAPER["dnn_units"])
        best = (0.0, None)
        for batch in args.batch_sizes:
            model, rename = scale.deepfm_for(schema, 16, dnn_units=PAPER["dnn_units"])
            ds = scale.read_dataset(tmp, batch, shuffle=True, rename=rename)
            steps = max(5, args.examples // batch)
            pipeline = (
                steps
                * batch
                / median_time(
                    lambda ds=ds, steps=steps: [None for _ in ds.repeat().take(steps)], args.repeats
                )
            )
            rate = train_rate(model, ds, steps, args.repeats)
            rows[f"batch {batch}"] = {
                "pipeline ex/s": pipeline,
                "train ex/s": rate,
                "pipeline / train": pipeline / rate,
                "GFLOP/s": rate * flops / 1e9,
                "% of fp32 matmul": 100 * rate * flops / 1e9 / gflops["float32"],
            }
            best = max(best, (rate, batch))
        batch = best[1]
        steps = max(5, args.examples // batch)
        rate = plain_keras_rate(model_schema_fields, args.ids, batch, steps, args.repeats)
        rows[f"batch {batch}, plain Keras MLP"] = {
            "train ex/s": rate,
            "GFLOP/s": rate * flops / 1e9,
            "% of fp32 matmul": 100 * rate * flops / 1e9 / gflops["float32"],
        }
        for label, options in (("jit Adam", {"jit": True}), ("mixed bf16", {"mixed": True})):
            policy = tf.keras.mixed_precision.global_policy()
            if options.get("mixed"):
                tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
            try:
                model, rename = scale.deepfm_for(schema, 16, dnn_units=PAPER["dnn_units"])
            finally:
                tf.keras.mixed_precision.set_global_policy(policy)
            ds = scale.read_dataset(tmp, batch, shuffle=True, rename=rename)
            rate = train_rate(model, ds, steps, args.repeats, jit_adam=options.get("jit", False))
            rows[f"batch {batch}, {label}"] = {
                "train ex/s": rate,
                "GFLOP/s": rate * flops / 1e9,
            }
    print(
        f"\nDeepFM 16 / 400-400-400 on {model_schema_fields} fields, {args.rows:,} streamed rows "
        f"({args.ids:,} ids): {flops / 1e6:.2f} MFLOP per training example (3 x forward DNN); "
        f"matmul peak fp32 {gflops['float32']:.0f}, bf16 {gflops['bfloat16']:.0f} GFLOP/s"
    )
    print(table(rows, digits=1))
    emit("throughput", rows)
    return rows


def scoring(args) -> dict:
    """Full-catalogue pairs/s, plain vs factorised, for the paper and the `make run` shapes."""
    data = ranking_data()
    n = data.movielens.num_movies
    users = np.arange(min(args.score_users, data.movielens.num_users))
    items = np.broadcast_to(np.arange(n), (users.size, n))
    rows = {}
    for label, hp in (("make-run 32 / 128-64", RUN_HPARAMS), ("paper 16 / 400-400-400", PAPER)):
        model = build_model("deepfm", data.example_table(), **{**hp, "dropout": 0.0})
        plain = data.score_fn(model, "test", factorised=False)
        fast = data.score_fn(model, "test")
        fields = len(model.user_tower.encoders) + len(model.movie_tower.encoders)
        k = hp["embedding_dim"]
        full = mlp_flops(fields * k, hp["dnn_units"])
        factored = full - 2 * fields * k * hp["dnn_units"][0]
        bounds = {
            "plain": dense_stack_bound([fields * k, *hp["dnn_units"]]),
            "factorised": dense_stack_bound(list(hp["dnn_units"])),
        }
        for name, fn, flops in (("plain", plain, full), ("factorised", fast, factored)):
            rate = users.size * n / median_time(lambda fn=fn: fn(users, items), args.repeats)
            rows[f"{label}, {name}"] = {
                "pairs/s": rate,
                "kFLOP/pair": flops / 1e3,
                "GFLOP/s": rate * flops / 1e9,
                "bound pairs/s": bounds[name],
                "% of bound": 100 * rate / bounds[name],
            }
        got, want = fast(users[:8], items[:8]), plain(users[:8], items[:8])
        rows[f"{label}, factorised"]["max |diff|"] = float(np.abs(got - want).max())
    print(
        f"\nFull-catalogue scoring, {users.size} users x {n} movies (bound = the remaining DNN matmuls alone, each timed at its own shape)"
    )
    print(table(rows, digits=2))
    emit("scoring", rows)
    return rows


QUALITY_VARIANTS = {
    "fp32": ({}, {}),
    "mixed_bfloat16": ({"mixed_precision": True}, {}),
    "lazy_adam": ({}, {"optimizer": "lazy_adam"}),
}
"""Quality-section variants: (model hyperparameters, training settings) over the make-run ones."""


def quality(args) -> dict:
    """ml-100k test metrics with the `make run` hyperparameters: fp32 vs mixed bfloat16 (and,
    with ``--quality-variants``, Adam vs LazyAdam)."""
    rows = {}
    for label in args.quality_variants.split(","):
        model_extra, train_extra = QUALITY_VARIANTS[label]
        data = ranking_data()
        cfg = dict(RUN_TRAIN, **({"epochs": args.quality_epochs} if args.quality_epochs else {}))
        cfg.update(train_extra, verbose=0)
        result = train_model("deepfm", data, {**RUN_HPARAMS, **model_extra}, cfg)
        m = result.metrics
        rows[label] = {
            "sampled hr@10": m["sampled hr@10"],
            "full hr@10": m["full hr@10"],
            "full ndcg@10": m["full ndcg@10"],
            "epochs": m["epochs"],
            "train s": m["train_seconds"],
        }
    print(f"\nml-100k, make-run hyperparameters, {' vs '.join(rows)} (leave-one-out test)")
    print(table(rows, digits=4))
    emit("quality", rows)
    return rows


def one_model(args) -> dict:
    """Per-model row: 1 epoch on ml-100k, full-catalogue scoring, export, recommend latency."""
    from tfrec.serving import load_recommender
    from tfrec.workflow import export_trained

    data = ranking_data()
    model = build_model(args.model, data.example_table())
    model.compile(tf.keras.optimizers.Adam(1e-3, jit_compile=False))
    ds = data.dataset(model, num_negatives=4, batch_size=args.model_batch)
    timer = StepTimer()
    model.fit(ds, epochs=2, callbacks=[timer], verbose=0)
    examples = len(data.train["user_index"]) * 5
    score_fn = data.score_fn(model, "test")
    users = np.arange(data.movielens.num_users)
    items = np.broadcast_to(
        np.arange(data.movielens.num_movies), (users.size, data.movielens.num_movies)
    )
    seconds = median_time(lambda: score_fn(users, items), repeats=args.repeats)
    row = {
        "epoch s": timer.epoch_seconds[-1],
        "train ex/s": examples / timer.epoch_seconds[-1],
        "score pairs/s": users.size * items.shape[1] / seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = export_trained(model, data, tmp, args.model)
        recommend = load_recommender(path)
        ids = data.movielens.user_ids
        recommend([str(ids[0])], 10)
        times = []
        for i in range(args.requests):
            start = time.perf_counter()
            recommend([str(ids[i % len(ids)])], 10)
            times.append(time.perf_counter() - start)
    row["recommend p50 ms"] = 1e3 * float(np.percentile(times, 50))
    row["recommend p99 ms"] = 1e3 * float(np.percentile(times, 99))
    row["peak RSS MB"] = peak_rss_mb()
    print(table({args.model: row}, digits=1))
    defaults = model_defaults(args.model)
    row["hparams"] = ", ".join(f"{k}={v}" for k, v in defaults.items() if k != "history")
    emit(f"model:{args.model}", row)
    return row


def main(argv=None) -> None:
    """Runs the selected sections and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--sections", default="machine,throughput,scoring,quality")
    parser.add_argument("--model", help="per-model row only (one model per process)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="streamed rows")
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="1024,4096,16384")
    parser.add_argument("--examples", type=int, default=400_000, help="per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-users", type=int, default=256)
    parser.add_argument("--quality-epochs", type=int, default=4, help="0: make-run epochs")
    parser.add_argument(
        "--quality-variants", default="fp32,mixed_bfloat16", help=f"of {','.join(QUALITY_VARIANTS)}"
    )
    parser.add_argument("--model-batch", type=int, default=2048)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.quick:
        args.rows, args.ids, args.examples, args.repeats = 200_000, 10_000, 40_000, 2
        args.batch_sizes, args.score_users, args.quality_epochs = [1024, 4096], 64, 1
        args.requests = 30
    if args.model:
        one_model(args)
        return
    sections = args.sections.split(",")
    gflops = {"float32": 100.0, "bfloat16": 100.0}
    if "machine" in sections:
        info = machine(args)
        gflops = {d: info[f"matmul GFLOP/s {d}"] for d in gflops}
    if "throughput" in sections:
        throughput(args, gflops)
    if "scoring" in sections:
        scoring(args)
    if "quality" in sections:
        quality(args)


if __name__ == "__main__":
    main()

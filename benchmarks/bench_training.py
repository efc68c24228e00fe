"""Training and scoring speed of DeepFM on this machine, next to what the hardware can do.

Exists to answer "how fast does tfrec train and score, and what limits it" with numbers from
one run: the machine's matmul GFLOP/s (fp32, bf16), the input pipeline alone vs pipeline +
DeepFM (embedding 16, DNN 400-400-400) at several batch sizes next to a bare Keras model of the
same width (the reference point) and to the step's DNN alone (its matmuls with nothing else; a
Keras Dense stack: how close to the ceiling any model of the shape can train), Adam with and
without XLA, `LazyAdam`, mixed bfloat16 (speed, and quality on ml-100k with the `make run`
preset for 4 epochs), where a paper-shape step's time goes (TF profiler), full catalogue
scoring through `CatalogueScorer` with the model's factorised `score_all` and with the
reference per-pair path (the whole network on every pair), and a per-model summary (`--model
NAME`, registry defaults, one model per process so its peak RSS is its own).

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
    catalogue_scorers,
    dense_stack_bound,
    emit,
    load_split,
    machine_info,
    make_run,
    make_run_training,
    matmul_gflops,
    median_time,
    mlp_flops,
    op_time_profile,
    peak_rss_mb,
    scale_deepfm,
    table,
    training_dnn_rates,
)

from tfrec.data import scale
from tfrec.evaluation import score_fn
from tfrec.models import build_model, model_defaults, train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.training import training_dataset
from tfrec.training.pipelines import examples_per_epoch
from tfrec.workflow import train_model

PAPER = {"embedding_dim": 16, "dnn_units": [400, 400, 400]}


def machine(args) -> dict:
    info = machine_info()
    for dtype in (tf.float32, tf.bfloat16):
        info[f"matmul GFLOP/s {dtype.name}"] = round(matmul_gflops(dtype), 1)
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    emit("machine", info)
    return info


def train_rate(model, ds, steps, repeats, jit_adam=False, optimizer=None) -> float:
    """Examples/s of `model.fit` over `steps` steps, median of `repeats` epochs after a warm-up,
    with the optimizer `tfrec.training.fit` gives DeepFM unless `optimizer` names another one
    (`jit_adam`: tf.keras' Adam under XLA)."""
    if jit_adam:
        optimizer = tf.keras.optimizers.Adam(1e-3, jit_compile=True)
    else:
        optimizer = get_optimizer(optimizer or train_defaults("deepfm")["optimizer"], 1e-3)
    model.compile(optimizer)
    timer = StepTimer()
    batch = next(iter(ds))
    rows = int(tf.size(batch["label"]))  # pairs (a grouped batch's label is [positives, 1 + k])
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
            model, rename = scale_deepfm(schema, 16, PAPER["dnn_units"])
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
            }
            best = max(best, (rate, batch))
        batch = best[1]
        steps = max(5, args.examples // batch)
        rate = plain_keras_rate(model_schema_fields, args.ids, batch, steps, args.repeats)
        rows[f"batch {batch}, plain Keras MLP"] = {"train ex/s": rate}
        variants = (("jit Adam", {"jit": True}), ("lazy Adam", {"optimizer": "lazy_adam"}),
                    ("mixed bf16", {"mixed": True}))  # fmt: skip
        for label, options in variants:
            policy = tf.keras.mixed_precision.global_policy()
            if options.get("mixed"):
                tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
            try:
                model, rename = scale_deepfm(schema, 16, PAPER["dnn_units"])
            finally:
                tf.keras.mixed_precision.set_global_policy(policy)
            ds = scale.read_dataset(tmp, batch, shuffle=True, rename=rename)
            rate = train_rate(model, ds, steps, args.repeats, jit_adam=options.get("jit", False),
                              optimizer=options.get("optimizer"))  # fmt: skip
            rows[f"batch {batch}, {label}"] = {"train ex/s": rate}
    # What the step's DNN alone reaches (no embeddings, no optimizer): any model of this shape
    # trains at most this close to the ceiling with TensorFlow's own kernels.
    for name, rate in training_dnn_rates(
        model_schema_fields * 16, PAPER["dnn_units"], batch
    ).items():
        rows[f"batch {batch}, DNN alone: {name}"] = {"train ex/s": rate}
    # The ceilings are best-of-N: re-measured here and the higher kept, so a noisy moment in
    # the machine section cannot flatter the percentages below.
    for dtype in (tf.float32, tf.bfloat16):
        gflops[dtype.name] = max(gflops[dtype.name], matmul_gflops(dtype))
    for name, row in rows.items():
        row["GFLOP/s"] = row["train ex/s"] * flops / 1e9
        if "bf16" not in name:
            row["% of fp32 matmul"] = 100 * row["GFLOP/s"] / gflops["float32"]
    print(
        f"\nDeepFM 16 / 400-400-400 on {model_schema_fields} fields, {args.rows:,} streamed rows "
        f"({args.ids:,} ids): {flops / 1e6:.2f} MFLOP per training example (3 x forward DNN); "
        f"matmul peak fp32 {gflops['float32']:.0f}, bf16 {gflops['bfloat16']:.0f} GFLOP/s (best "
        "of the machine section and this section's end)"
    )
    print(table(rows, digits=1))
    emit("throughput", rows)
    return rows


def paper_profile(args, gflops: dict) -> dict:
    """Where a paper-shape step's time goes at the largest batch: op time by type (TF profiler,
    one step per call on cached batches) next to the matmul work timed at the fp32 ceiling."""
    batch, steps = max(args.batch_sizes), 10
    schema = scale.make_schema("movielens", rows=batch * steps, ids=args.ids, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        scale.write_dataset(schema, tmp)
        model, rename = scale_deepfm(schema, 16, PAPER["dnn_units"])
        ds = scale.read_dataset(tmp, batch, shuffle=True, rename=rename).take(steps).cache()
        model.compile(get_optimizer(train_defaults("deepfm")["optimizer"], 1e-3))
        found = op_time_profile(
            lambda: model.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, verbose=0), steps
        )
    flops = 3 * mlp_flops((len(schema["columns"]) - 1) * 16, PAPER["dnn_units"])
    matmul = sum(v for k, v in found["by op type"].items() if "MatMul" in k)
    found["matmul op ms"] = matmul
    found["other op ms"] = found["total op ms per step"] - matmul
    found["matmul ms at the fp32 ceiling"] = 1e3 * batch * flops / (gflops["float32"] * 1e9)
    print(
        f"\nprofile, paper shape, batch {batch}: {found['total op ms per step']:.1f} op-ms per "
        f"step (matmuls {matmul:.1f}, other ops {found['other op ms']:.1f}); the step's matmul "
        f"work at the fp32 ceiling: {found['matmul ms at the fp32 ceiling']:.1f} ms"
    )
    for part in ("by op type", "by layer"):
        print(f"  {part}: " + ", ".join(f"{k} {v}" for k, v in found[part].items()))
    emit("paper_profile", found)
    return found


def scoring(args) -> dict:
    """Full-catalogue pairs/s through `CatalogueScorer`: the model's factorised `score_all` vs
    the reference per-pair path, for the paper and the `make run` shapes."""
    data = load_split()
    n = data.num_items
    users = np.arange(min(args.score_users, data.num_users))
    items = np.broadcast_to(np.arange(n), (users.size, n))
    rows = {}
    run = make_run()
    for label, hp in (("make-run 32 / 128-64", run.hparams), ("paper 16 / 400-400-400", PAPER)):
        model = build_model("deepfm", data, **{**hp, "dropout": 0.0})
        scorers = catalogue_scorers(model, data, "test")
        fields = len(model.query_tower.fields) + len(model.candidate_tower.fields)
        k = hp["embedding_dim"]
        full = mlp_flops(fields * k, hp["dnn_units"])
        factored = full - 2 * fields * k * hp["dnn_units"][0]
        bounds = {
            "reference": dense_stack_bound([fields * k, *hp["dnn_units"]]),
            "factorised": dense_stack_bound(list(hp["dnn_units"])),
        }
        for name, flops in (("reference", full), ("factorised", factored)):
            fn = scorers[name]
            rate = users.size * n / median_time(lambda fn=fn: fn(users, items), args.repeats)
            rows[f"{label}, {name}"] = {
                "pairs/s": rate,
                "kFLOP/pair": flops / 1e3,
                "GFLOP/s": rate * flops / 1e9,
                "bound pairs/s": bounds[name],
                "% of bound": 100 * rate / bounds[name],
            }
        got = scorers["factorised"](users[:8], items[:8])
        want = scorers["reference"](users[:8], items[:8])
        rows[f"{label}, factorised"]["max |diff|"] = float(np.abs(got - want).max())
    print(
        f"\nFull-catalogue scoring through CatalogueScorer, {users.size} users x {n} movies "
        "(reference = the whole network on every pair; bound = the remaining DNN matmuls alone, "
        "each timed at its own shape)"
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
    """ml-100k test metrics with the `make run` preset: fp32 vs mixed bfloat16 (and, with
    ``--quality-variants``, Adam vs LazyAdam)."""
    rows = {}
    run = make_run()
    for label in args.quality_variants.split(","):
        model_extra, train_extra = QUALITY_VARIANTS[label]
        data = load_split()
        cfg = make_run_training(**({"epochs": args.quality_epochs} if args.quality_epochs else {}))
        cfg.update(train_extra)
        result = train_model(run.model, data, {**run.hparams, **model_extra}, cfg, verbose=0)
        m = result.metrics
        rows[label] = {
            "sampled_hr@10": m["sampled_hr@10"],
            "full_hr@10": m["full_hr@10"],
            "full_ndcg@10": m["full_ndcg@10"],
            "epochs": m["epochs"],
            "train s": m["train_seconds"],
        }
    print(f"\nml-100k, make-run preset, {' vs '.join(rows)} (leave-one-out test)")
    print(table(rows, digits=4))
    emit("quality", rows)
    return rows


def one_model(args) -> dict:
    """Per-model row (registry defaults): 2 epochs on ml-100k (the second timed), full-catalogue
    scoring through `CatalogueScorer`, export, `recommend` latency."""
    from tfrec.serving import export_model, load_recommender

    data = load_split()
    model = build_model(args.model, data)
    model.compile(tf.keras.optimizers.Adam(1e-3, jit_compile=False))
    ds = training_dataset(model, data, num_negatives=4, batch_size=args.model_batch)
    timer = StepTimer()
    model.fit(ds, epochs=2, callbacks=[timer], verbose=0)
    examples = examples_per_epoch(model, data, 4)
    scorer = score_fn(model, data, "test")
    users = np.arange(data.num_users)
    items = np.broadcast_to(np.arange(data.num_items), (users.size, data.num_items))
    seconds = median_time(lambda: scorer(users, items), repeats=args.repeats)
    row = {
        "epoch s": timer.epoch_seconds[-1],
        "train ex/s": examples / timer.epoch_seconds[-1],
        "score pairs/s": users.size * items.shape[1] / seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, data, as_of="all", base_dir=tmp, name=args.model)
        recommend = load_recommender(path)
        ids = data.user_ids
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
    row["hparams"] = ", ".join(f"{k}={v}" for k, v in model_defaults(args.model).items())
    emit(f"model:{args.model}", row)
    return row


def main(argv=None) -> None:
    """Runs the selected sections and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--sections", default="machine,throughput,profile,scoring,quality")
    parser.add_argument("--model", help="per-model row only (one model per process)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="streamed rows")
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="1024,4096,16384")
    parser.add_argument("--examples", type=int, default=400_000, help="per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-users", type=int, default=256)
    parser.add_argument("--quality-epochs", type=int, default=4, help="0: the preset's epochs")
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
    if "profile" in sections:
        paper_profile(args, gflops)
    if "scoring" in sections:
        scoring(args)
    if "quality" in sections:
        quality(args)


if __name__ == "__main__":
    main()

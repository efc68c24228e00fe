"""Training speed at the small shape people train (issue 16): tfrec's DeepFM vs plain Keras.

Both models see the same ml-100k training interactions and the same six fields (user id,
gender, age bucket, occupation | movie id, genres), embedding 32, DNN 128-64, batch 2048,
4 uniform negatives per positive re-drawn every epoch, Adam 2e-3:

* **plain Keras**: a functional DeepFM (one `Embedding` per field and its first-order
  weight, mean-pooled genres, the FM identity, `Dense` 128-64-1), numpy arrays into
  `model.fit`, negatives re-drawn per epoch in numpy (vectorised, never a positive);
* **tfrec**: `tfrec.models.DeepFM` on towers of the same six columns, trained the way
  `tfrec.training.fit` trains (the library's pipeline and compile settings): batches grouped
  by positive (409 positives with their 4 negatives: 2,045 pairs), each user's side encoded
  once per positive (`Recommender.score_grouped`) and each distinct movie of a batch once
  (`Recommender.distinct_candidates`).

Rates are training examples (positives + negatives) per second of one epoch, the best of
`--epochs` epochs after a warm-up epoch, median over `--repeats` interleaved repeats (the
machine is shared: compare rows of one run only). Each side is timed as it trains: plain Keras
one `fit` call per epoch (its numpy negatives drawn between calls, outside the clock), tfrec
epochs inside one `fit` call, as `tfrec.training.fit` runs them (the row "one fit call per
epoch" times tfrec the plain-Keras way, as this benchmark did before 2026-12-02). The
`make run` shape (its ten fields and 20-movie history) is timed the same way, with 4 negatives
and with the 8 it trains with.

`--ablation` times one training step (median over steps of one `fit` on cached batches) with
each of the overheads issue 16 removed put back, one at a time, interleaved; `--profile`
prints where a step's time goes (TF profiler, op time summed over TensorFlow's threads);
`--validation` times the per-epoch ranking evaluation that drives early stopping; `setup` the
model build, the training inputs and the first (tracing) call of `make run`'s model.

    .venv/bin/python benchmarks/bench_small_shape.py
    .venv/bin/python benchmarks/bench_small_shape.py --quick
    .venv/bin/python benchmarks/bench_small_shape.py --sections ablation,profile,validation,setup
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import time

import numpy as np
import tensorflow as tf
from _bench_utils import emit, interleaved, machine_info, op_time_profile, table

import tfrec.features.encoders as encoders
import tfrec.layers.dropout as dropout
import tfrec.layers.fm as fm
from tfrec.data.pipelines import grouped_batch_rows
from tfrec.features import Categorical, MultiCategorical, build_tower, example_table
from tfrec.models import DeepFM, build_model, preset, train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.tasks import RankingTask
from tfrec.training import RankingEvaluation, pipelines, training_dataset, training_inputs
from tfrec.workflow import load_data

USER = ("user_id", "user_gender", "bucketized_user_age", "user_occupation_text")
K, UNITS, BATCH, NEGATIVES, LR = 32, (128, 64), 2048, 4, 2e-3


def _codes(values) -> tuple[np.ndarray, int]:
    """Dense int32 codes of a column and the vocabulary size."""
    uniques, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return codes.reshape(-1).astype(np.int32), len(uniques)


def plain_keras_model(sizes: dict, genres: int) -> tf.keras.Model:
    """A textbook functional Keras DeepFM over six fields (no tfrec code)."""
    inputs, vectors, weights = {}, [], []
    for name, size in sizes.items():
        x = tf.keras.Input((), dtype=tf.int32, name=name)
        inputs[name] = x
        vectors.append(tf.keras.layers.Embedding(size, K)(x))
        weights.append(tf.keras.layers.Embedding(size, 1)(x))
    g = tf.keras.Input((None,), dtype=tf.int32, name="movie_genres")  # 0 = padding
    inputs["movie_genres"] = g
    vectors.append(
        tf.keras.layers.GlobalAveragePooling1D()(
            tf.keras.layers.Embedding(genres + 1, K, mask_zero=True)(g)
        )
    )
    weights.append(
        tf.keras.layers.GlobalAveragePooling1D()(
            tf.keras.layers.Embedding(genres + 1, 1, mask_zero=True)(g)
        )
    )
    fields = tf.stack(vectors, axis=1)
    square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
    sum_of_squares = tf.reduce_sum(tf.square(fields), axis=1)
    fm = 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)
    linear = tf.keras.layers.Dense(1)(tf.concat(weights, axis=1))
    hidden = tf.keras.layers.Flatten()(fields)
    for units in UNITS:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    logit = linear + fm + tf.keras.layers.Dense(1)(hidden)
    model = tf.keras.Model(inputs, logit)
    model.compile(
        tf.keras.optimizers.Adam(LR), tf.keras.losses.BinaryCrossentropy(from_logits=True)
    )
    return model


class PlainKeras:
    """The plain Keras side: its model and numpy training arrays with fresh negatives."""

    def __init__(self, data):
        self.data = data
        users, items = data.users, data.items
        self.user_codes = {name: _codes(users[name]) for name in USER}
        self.movie_codes = _codes(items["movie_id"])
        raw = np.asarray(items["movie_genres"])
        self.genres = np.where(raw >= 0, raw + 1, 0).astype(np.int32)
        sizes = {name: size for name, (_, size) in self.user_codes.items()}
        sizes["movie_id"] = self.movie_codes[1]
        self.model = plain_keras_model(sizes, int(raw.max()) + 1)
        train = data.train
        self.users = train["user_index"].astype(np.int64)
        self.items = train["movie_index"].astype(np.int64)
        self.keys = np.unique(self.users * data.num_items + self.items)
        self.rng = np.random.default_rng(0)

    def arrays(self):
        """One epoch: positives plus NEGATIVES fresh uniform non-positive items each."""
        n = self.users.size
        users = np.repeat(self.users, NEGATIVES)
        items = self.rng.integers(0, self.data.num_items, users.size)
        bad = np.isin(users * self.data.num_items + items, self.keys)
        while bad.any():  # redraw the few that hit a positive
            items[bad] = self.rng.integers(0, self.data.num_items, int(bad.sum()))
            bad = np.isin(users * self.data.num_items + items, self.keys)
        users = np.concatenate([self.users, users])
        items = np.concatenate([self.items, items])
        labels = np.concatenate([np.ones(n), np.zeros(users.size - n)]).astype(np.float32)
        x = {name: codes[users] for name, (codes, _) in self.user_codes.items()}
        x["movie_id"] = self.movie_codes[0][items]
        x["movie_genres"] = self.genres[items]
        return x, labels

    def epochs(self, count: int) -> list[tuple[int, float]]:
        """(examples, seconds) of each of `count` epochs, one `fit` call each."""
        return [self._epoch() for _ in range(count)]

    def _epoch(self) -> tuple[int, float]:
        x, y = self.arrays()
        start = time.perf_counter()
        self.model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        return y.size, time.perf_counter() - start


class Tfrec:
    """The tfrec side: a DeepFM (or a registered model) trained as `fit` trains it: one
    `model.fit` call over an endless dataset of epochs (`training_dataset(epochs=(0, None))`,
    each epoch re-drawn), so the next epoch's batches are prepared while one ends. With
    ``one_fit=False`` each epoch is a `model.fit` call of its own, the dataset's iterator and
    first batches made anew each time (how this benchmark timed tfrec before 2026-12-02)."""

    def __init__(self, data, model, negatives=NEGATIVES, one_fit=True):
        self.model = model
        self.one_fit = one_fit
        settings = train_defaults("deepfm")
        inputs = training_inputs(model, data)
        self.steps = pipelines.steps_per_epoch(model, data, negatives, BATCH)
        self.dataset = training_dataset(
            model, data, num_negatives=negatives, batch_size=BATCH, inputs=inputs,
            epochs=(0, None) if one_fit else None,
        )  # fmt: skip
        zero = tf.constant([0])
        model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
        model.compile(
            optimizer=get_optimizer(settings["optimizer"], LR),
            steps_per_execution=settings["steps_per_execution"],
        )
        self.rows = len(data.train["user_index"]) * (1 + negatives)

    def epochs(self, count: int) -> list[tuple[int, float]]:
        """(examples, seconds) of each of `count` epochs."""
        if not self.one_fit:
            return [self._one_call() for _ in range(count)]
        clock = _EpochClock()
        self.model.fit(self.dataset, epochs=count, steps_per_epoch=self.steps, verbose=0,
                       callbacks=[clock])  # fmt: skip
        return [(self.rows, seconds) for seconds in clock.seconds]

    def _one_call(self) -> tuple[int, float]:
        start = time.perf_counter()
        self.model.fit(self.dataset, epochs=1, verbose=0)
        return self.rows, time.perf_counter() - start


class _EpochClock(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def six_field_deepfm(data) -> DeepFM:
    table = example_table(data)
    user = build_tower(table, [Categorical(c) for c in USER], K, name="user_tower")
    movie = build_tower(
        table,
        [Categorical("movie_id"), MultiCategorical("movie_genres", padding="-1")],
        K,
        name="movie_tower",
    )
    return DeepFM(user, movie, dnn_units=UNITS, dropout=0.0, batch_norm=False,
                  retrieval_weight=0.0, task="ranking", history_length=0, l2=0.0)  # fmt: skip


# ---------------------------------------------------------------- what issue 16 removed
# The implementations tfrec used before issue 16, to put each overhead back in the ablation.


def _fm_by_autodiff(self, embeddings):
    """The factorization machine with TensorFlow's own gradient (three [B, F, k] broadcasts)."""
    interaction = fm.bi_interaction(tf.cast(embeddings, self.compute_dtype))
    return tf.reduce_sum(interaction, axis=1, keepdims=True) if self.reduce_sum else interaction


def _pool_by_sparse_matmul(ids, *tables):
    """Multi-valued pooling (history, genres) as one single-threaded sparse-dense matmul per
    table, both ways."""
    valid = ids >= 0
    where = tf.where(valid)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32), axis=1), 1.0)
    shares = tf.sparse.SparseTensor(
        tf.stack([where[:, 0], tf.gather_nd(ids, where)], axis=1),
        tf.gather(1.0 / count, where[:, 0]),
        tf.stack([tf.shape(ids, out_type=tf.int64)[0], tf.shape(tables[0], out_type=tf.int64)[0]]),
    )
    return [tf.sparse.sparse_dense_matmul(shares, t) for t in tables]


def _dropout_32bit(self, x, training=None):
    """Dropout's mask from one 32-bit random number per unit."""
    if not training or self.rate == 0.0:
        return x
    seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int32)
    keep = tf.random.stateless_uniform(tf.shape(x), seed, dtype=x.dtype) >= self.rate
    return tf.where(keep, x * (1.0 / (1.0 - self.rate)), tf.zeros_like(x))


def _flat_batches(model, data, inputs):
    """Pointwise batches of one row per pair (the query's features repeated for each of its
    candidates), as before grouped batches: every model then encodes each query 1 + k times."""
    return pipelines._with_negatives(
        model, data, inputs, num_negatives=NEGATIVES, batch_size=BATCH, distribution="uniform",
        seed=0, grouped=False,
    )  # fmt: skip


ABLATION = {
    "tfrec (all of issue 16)": {},
    "flat batches (query encoded per pair, not per positive)": {"batches": _flat_batches},
    "every pair's candidate encoded (not each distinct one)": {"distinct": False},
    "one step per call": {"steps_per_execution": 1},
    "training metrics off (AUC, log loss)": {"metrics": False},
    "FM gradient by autodiff": {"fm": _fm_by_autodiff},
    "pooling by sparse matmul": {"pool": _pool_by_sparse_matmul},
    "dropout mask from 32-bit draws": {"dropout": _dropout_32bit},
}


def step_runner(data, shape: str, variant: dict, steps: int):
    """A model of `shape` with `variant`'s overhead put back; returns a function timing one
    `fit` of `steps` steps on 8 cached batches, as examples per second of the median step."""
    saved = (fm.FactorizationMachine.call, dropout.StatelessDropout.call,
             encoders.mean_of_rows, encoders.multi_hot_mean)  # fmt: skip
    fm.FactorizationMachine.call = variant.get("fm", saved[0])
    dropout.StatelessDropout.call = variant.get("dropout", saved[1])
    encoders.mean_of_rows = variant.get("pool", saved[2])
    encoders.multi_hot_mean = variant.get("pool", saved[3])
    try:
        if shape == "six":
            model = six_field_deepfm(data)
        else:
            model = build_model("deepfm", data, **preset("movielens-100k").hparams)
        model.task = RankingTask(metrics=variant.get("metrics", True))
        model.distinct_candidates = variant.get("distinct", True)
        inputs = training_inputs(model, data)
        if "batches" in variant:
            batches, pairs = variant["batches"](model, data, inputs), BATCH
        else:
            batches = training_dataset(model, data, num_negatives=NEGATIVES, batch_size=BATCH,
                                       inputs=inputs)  # fmt: skip
            pairs = grouped_batch_rows(BATCH, NEGATIVES) * (1 + NEGATIVES)
        batches = batches.take(8).cache().repeat()
        zero = tf.constant([0])
        model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
        per_call = variant.get(
            "steps_per_execution", train_defaults("deepfm")["steps_per_execution"]
        )
        model.compile(optimizer=get_optimizer("adam", LR), steps_per_execution=per_call)
        clock = _StepClock()
        model.fit(batches, epochs=1, verbose=0, steps_per_epoch=steps, callbacks=[clock])  # trace
    finally:
        fm.FactorizationMachine.call, dropout.StatelessDropout.call = saved[:2]
        encoders.mean_of_rows, encoders.multi_hot_mean = saved[2:]

    def run() -> float:
        model.fit(batches, epochs=1, verbose=0, steps_per_epoch=steps, callbacks=[clock])
        return pairs * per_call / float(np.median(np.diff(clock.times)[1:]))

    return run


class _StepClock(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def ablation(data, repeats: int) -> dict:
    """Ex/s of the median training step, each removed overhead put back one at a time."""
    runners = {
        (shape, name): step_runner(data, shape, variant, steps=64)
        for shape in ("six", "make run")
        for name, variant in ABLATION.items()
    }
    rates = interleaved(runners, repeats)
    rows = {}
    for (shape, name), r in rates.items():
        full = float(np.median(rates[(shape, "tfrec (all of issue 16)")]))
        rows[f"{shape}: {name}"] = {
            "ex/s (median step)": float(np.median(r)),
            "x tfrec": float(np.median(r)) / full,
        }
    return rows


def profile(data, shape: str, steps: int = 50) -> dict:
    """Op time of one training step (ms, summed over TensorFlow's threads) by op type."""
    return op_time_profile(step_runner(data, shape, {"steps_per_execution": 1}, steps), steps)


def validation_cost(data) -> dict:
    """Seconds of the per-epoch ranking evaluation (after its first, input-building call)
    against one training epoch of the `make run` model."""
    chosen = preset("movielens-100k")
    model = build_model("deepfm", data, **chosen.hparams)
    runner = Tfrec(data, model)
    epoch = min(seconds for _, seconds in runner.epochs(3)[1:])
    out = {"train epoch s (4 negatives)": epoch}
    for protocol in ("sampled", "full"):
        callback = RankingEvaluation(data, protocol=protocol)
        callback.set_model(model)
        first = time.perf_counter()
        callback.on_epoch_end(0, {})
        out[f"{protocol}: first call s"] = time.perf_counter() - first
        seconds = min(_timed(callback) for _ in range(3))
        out[f"{protocol}: per epoch s"] = seconds
        out[f"{protocol}: % of an epoch"] = 100 * seconds / epoch
    return out


def setup_cost(data) -> dict:
    """Seconds `make run` spends before its steps run at speed: building the model (adapting
    vocabularies), its training inputs (the histories), and the first `fit` of 8 steps, which
    traces the train function, with 8 steps per call (the default) and with one."""
    chosen = preset("movielens-100k")
    start = time.perf_counter()
    model = build_model("deepfm", data, **chosen.hparams)
    out = {"build_model s": time.perf_counter() - start}
    start = time.perf_counter()
    training_inputs(model, data)
    out["training_inputs s"] = time.perf_counter() - start
    for per_call in (8, 1):
        model = build_model("deepfm", data, **chosen.hparams)  # fresh: traced anew
        inputs = training_inputs(model, data)
        dataset = training_dataset(model, data, num_negatives=chosen.train["num_negatives"],
                                   batch_size=BATCH, inputs=inputs)  # fmt: skip
        zero = tf.constant([0])
        model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
        model.compile(optimizer=get_optimizer("adam", LR), steps_per_execution=per_call)
        for label in ("first", "next"):
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=8, verbose=0)
            out[f"{label} 8 steps, {per_call} per call s"] = time.perf_counter() - start
    return out


def _timed(callback) -> float:
    start = time.perf_counter()
    callback.on_epoch_end(0, {})
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default="reference,ablation,validation,setup,profile")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 1, 1
    sections = set(args.sections.split(","))
    print(json.dumps(machine_info()))
    data = load_data("100k")
    if "reference" in sections:
        reference(data, args)
    if "ablation" in sections:
        rows = ablation(data, args.repeats)
        print(table(rows, digits=2))
        emit("small_shape_ablation", rows)
    if "validation" in sections:
        cost = validation_cost(data)
        print(table({"make run model": cost}, digits=2))
        emit("small_shape_validation", cost)
    if "setup" in sections:
        cost = setup_cost(data)
        print(table({"make run model": cost}, digits=2))
        emit("small_shape_setup", cost)
    if "profile" in sections:
        for shape in ("six", "make run"):
            found = profile(data, shape)
            print(f"profile, {shape} shape: {found['total op ms per step']:.1f} op-ms per step")
            for part in ("by op type", "by layer"):
                print(f"  {part}: " + ", ".join(f"{k} {v}" for k, v in found[part].items()))
            emit(f"small_shape_profile_{shape}", found)


def reference(data, args) -> None:
    """tfrec's DeepFM next to the plain Keras one, full epochs from the real pipelines."""
    chosen = preset("movielens-100k")
    runners = {
        "plain Keras DeepFM (6 fields)": PlainKeras(data),
        "tfrec DeepFM (6 fields)": Tfrec(data, six_field_deepfm(data)),
        "tfrec DeepFM (6 fields), one fit call per epoch": Tfrec(
            data, six_field_deepfm(data), one_fit=False
        ),
        "tfrec DeepFM (make run shape)": Tfrec(data, build_model("deepfm", data, **chosen.hparams)),
        "tfrec DeepFM (make run as it trains: 8 negatives)": Tfrec(
            data, build_model("deepfm", data, **chosen.hparams), chosen.train["num_negatives"]
        ),
    }
    for runner in runners.values():  # warm-up epoch: tracing, first pipeline fill
        runner.epochs(1)
    rates = interleaved(  # each repeat: the best of its epochs
        {
            name: lambda runner=runner: max(n / s for n, s in runner.epochs(args.epochs))
            for name, runner in runners.items()
        },
        args.repeats,
    )
    reference = float(np.median(rates["plain Keras DeepFM (6 fields)"]))
    rows = {
        name: {
            "ex/s": float(np.median(r)),
            "x plain Keras": float(np.median(r)) / reference,
            "repeats": " ".join(f"{x / 1000:.1f}k" for x in r),
        }
        for name, r in rates.items()
    }
    print(table(rows, digits=2))
    emit("small_shape", rows)


if __name__ == "__main__":
    main()

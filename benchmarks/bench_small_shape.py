"""Training speed at the small shape people train (issue 16): tfrec's DeepFM vs plain Keras.

Both models see the same ml-100k training interactions and the same six fields (user id,
gender, age bucket, occupation | movie id, genres), embedding 32, DNN 128-64, batch 2048,
4 uniform negatives per positive re-drawn every epoch, Adam 2e-3:

* **plain Keras**: a functional DeepFM (one `Embedding` per field and its first-order
  weight, mean-pooled genres, the FM identity, `Dense` 128-64-1), numpy arrays into
  `model.fit`, negatives re-drawn per epoch in numpy (vectorised, never a positive);
* **tfrec**: `tfrec.models.DeepFM` on towers of the same six columns, trained the way
  `tfrec.training.fit` trains (the library's pipeline and compile settings).

Rates are training examples (positives + negatives) per second of one epoch's `fit`, the best
of `--epochs` epochs after a warm-up epoch, median over `--repeats` interleaved repeats (the
machine is shared: compare rows of one run only). The `make run` shape (its ten fields and
20-movie history) is timed the same way.

    .venv/bin/python benchmarks/bench_small_shape.py
    .venv/bin/python benchmarks/bench_small_shape.py --quick
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import argparse
import json
import time

import numpy as np
import tensorflow as tf
from _bench_utils import emit, machine_info, table

from tfrec.features import Categorical, MultiCategorical, build_tower, example_table
from tfrec.models import DeepFM, build_model, preset, train_defaults
from tfrec.optimizers import get_optimizer
from tfrec.training import training_dataset, training_inputs
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

    def epoch(self) -> tuple[int, float]:
        x, y = self.arrays()
        start = time.perf_counter()
        self.model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        return y.size, time.perf_counter() - start


class Tfrec:
    """The tfrec side: a DeepFM (or a registered model) trained as `fit` trains it."""

    def __init__(self, data, model):
        self.model = model
        settings = train_defaults("deepfm")
        inputs = training_inputs(model, data)
        self.dataset = training_dataset(
            model, data, num_negatives=NEGATIVES, batch_size=BATCH, inputs=inputs
        )
        zero = tf.constant([0])
        model(inputs.gather(zero, zero, zero if inputs.per_row else None), training=False)
        model.compile(
            optimizer=get_optimizer(settings["optimizer"], LR),
            steps_per_execution=settings.get("steps_per_execution", 1),
        )
        self.rows = len(data.train["user_index"]) * (1 + NEGATIVES)

    def epoch(self) -> tuple[int, float]:
        start = time.perf_counter()
        self.model.fit(self.dataset, epochs=1, verbose=0)
        return self.rows, time.perf_counter() - start


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 1, 1
    print(json.dumps(machine_info()))
    data = load_data("100k")
    chosen = preset("movielens-100k")
    runners = {
        "plain Keras DeepFM (6 fields)": PlainKeras(data),
        "tfrec DeepFM (6 fields)": Tfrec(data, six_field_deepfm(data)),
        "tfrec DeepFM (make run shape)": Tfrec(data, build_model("deepfm", data, **chosen.hparams)),
    }
    for runner in runners.values():  # warm-up epoch: tracing, first pipeline fill
        runner.epoch()
    rates = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, runner in runners.items():  # interleaved, so load hits every row alike
            best = max(
                rows / seconds for rows, seconds in (runner.epoch() for _ in range(args.epochs))
            )
            rates[name].append(best)
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

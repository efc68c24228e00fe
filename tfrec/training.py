"""From a MovieLens split to `model.fit`-ready pipelines, score functions and evaluation.

`RankingData` gathers everything a leave-one-out ranking experiment needs once: the split,
each training interaction's recent history (computed strictly before it, so nothing leaks),
the feature stores used at validation and test time (user histories as of that moment), the
items to mask in full ranking, and a joined table to adapt feature columns to. Any model
that follows `tfrec.models.base.RankingModel` trains and evaluates through it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.data import (
    MovieLens,
    NegativeSampler,
    Split,
    last_history,
    leave_one_out,
    recent_history,
    training_dataset,
)
from tfrec.evaluation import ExcludeSet, full_ranking, sampled_ranking
from tfrec.features.store import FeatureStore, utf8
from tfrec.towers import RECENT_MOVIES


def _concat(*tables: dict) -> dict:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def _take(table: dict, rows: np.ndarray) -> dict:
    return {k: np.asarray(v)[rows] for k, v in table.items()}


@dataclass
class RankingData:
    """A leave-one-out ranking experiment on one MovieLens variant (see module docstring)."""

    movielens: MovieLens
    split: Split
    train: dict
    stores: dict
    exclude: dict
    history_length: int
    _exclude_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_movielens(cls, ml: MovieLens, history_length: int = 20, split: Split | None = None):
        split = split or leave_one_out(ml.ratings)
        for name, part in zip(("train", "valid", "test"), split, strict=True):
            if len(part["user_index"]) == 0:
                raise ValueError(
                    f"The {name} split is empty. Fix: use a variant or split whose users have "
                    "at least 3 interactions."
                )
        train = dict(split.train)
        if history_length:
            train[RECENT_MOVIES] = recent_history(split.train, length=history_length)
        seen_valid = split.train
        seen_test = _concat(split.train, split.valid)
        stores = {
            "valid": cls._store(ml, seen_valid, history_length),
            "test": cls._store(ml, seen_test, history_length),
        }
        exclude = {"valid": seen_valid, "test": seen_test}
        return cls(ml, split, train, stores, exclude, history_length)

    @staticmethod
    def _store(ml: MovieLens, seen: dict, history_length: int) -> FeatureStore:
        history = None
        if history_length:
            last = last_history(seen, length=history_length)
            history = {"user_id": last["user_id"], RECENT_MOVIES: last["history"]}
        return FeatureStore(ml.users, ml.movies, history)

    def example_table(self) -> dict:
        """Training interactions joined with their side features, to adapt columns to."""
        table = dict(self.train)
        table.update(_take(self.movielens.movies, self.train["movie_index"]))
        if self.movielens.users is not None:
            table.update(_take(self.movielens.users, self.train["user_index"]))
        return table

    def dataset(self, num_negatives=4, batch_size=1024, distribution="uniform", alpha=0.75, seed=0):
        """Training batches: positives plus negatives re-drawn each epoch, side features joined."""
        ml = self.movielens
        sampler = NegativeSampler(
            self.train["user_index"],
            self.train["movie_index"],
            ml.num_movies,
            distribution=distribution,
            alpha=alpha,
            seed=seed,
        )
        store = self.stores["valid"]
        ds = training_dataset(
            self.train,
            ml.movie_ids,
            sampler,
            num_negatives=num_negatives,
            batch_size=batch_size,
            seed=seed,
        )

        def join(batch):
            return store.join_by_index(batch, batch["user_index"], batch["movie_index"])

        return ds.map(join, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def targets(self, split: str):
        part = {"valid": self.split.valid, "test": self.split.test}[split]
        return part["user_index"].astype(np.int64), part["movie_index"].astype(np.int64)

    def score_fn(self, model, split: str = "test"):
        """A `tfrec.evaluation` score function: (user_index [B], item_index [B, C]) -> scores."""
        store = self.stores[split]
        user_ids = tf.constant(utf8(self.movielens.user_ids))
        movie_ids = tf.constant(utf8(self.movielens.movie_ids))

        @tf.function(reduce_retracing=True)
        def score(user_index, item_index):
            shape = tf.shape(item_index)
            users = tf.repeat(tf.gather(user_ids, user_index), shape[1])
            movies = tf.gather(movie_ids, tf.reshape(item_index, [-1]))
            features = store.join({"user_id": users, "movie_id": movies})
            return tf.reshape(model(features, training=False), shape)

        return lambda u, i: score(tf.constant(u, tf.int64), tf.constant(i, tf.int64)).numpy()

    def exclude_set(self, split: str) -> ExcludeSet:
        """Items each user already has before `split` (masked in full ranking)."""
        if split not in self._exclude_cache:
            seen = self.exclude[split]
            self._exclude_cache[split] = ExcludeSet.from_pairs(
                seen["user_index"].astype(np.int64),
                seen["movie_index"].astype(np.int64),
                self.movielens.num_users,
                self.movielens.num_movies,
            )
        return self._exclude_cache[split]

    def evaluate(self, score_fn, split="test", ks=(10,), protocols=("sampled", "full"), seed=0):
        """Leave-one-out metrics of `score_fn` under the sampled (99 uniform) and full protocols."""
        users, targets = self.targets(split)
        exclude = self.exclude_set(split)
        n = self.movielens.num_movies
        results = {}
        if "sampled" in protocols:
            results["sampled"] = sampled_ranking(
                score_fn, users, targets, n, exclude, ks=ks, seed=seed
            )
        if "full" in protocols:
            results["full"] = full_ranking(score_fn, users, targets, n, exclude, ks=ks)
        return results


class RankingEvaluation(tf.keras.callbacks.Callback):
    """Adds leave-one-out validation metrics (e.g. ``val_full_ndcg@10``) to each epoch's logs.

    Exists because the validation loss on sampled negatives tracks ranking quality poorly:
    early stopping and checkpoints should watch the metric the user will be judged on.
    """

    def __init__(self, data: RankingData, protocol: str = "full", ks=(10,), every: int = 1):
        super().__init__()
        self.data, self.protocol, self.ks, self.every = data, protocol, ks, every

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        score_fn = self.data.score_fn(self.model, "valid")
        result = self.data.evaluate(score_fn, "valid", self.ks, protocols=(self.protocol,))
        for name, value in result[self.protocol].items():
            if isinstance(value, float | int | np.floating):
                logs[f"val_{self.protocol}_{name}"] = float(value)


def fit(
    model,
    data: RankingData,
    epochs: int = 20,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    num_negatives: int = 4,
    patience: int = 3,
    monitor: str = "val_full_ndcg@10",
    log_dir: str | None = None,
    checkpoint_dir: str | None = None,
    callbacks=(),
    verbose: int | str = "auto",
    seed: int = 0,
    **_ignored,
):
    """Compiles and fits `model` on `data` with negatives re-drawn every epoch.

    Early stopping watches a validation *ranking* metric (full-ranking NDCG@10 by default)
    and restores the best epoch's weights; TensorBoard and checkpoint callbacks are added
    when `log_dir` / `checkpoint_dir` are given. Returns the Keras History.
    """
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1. Received: epochs={epochs}")
    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    protocol = "sampled" if monitor.startswith("val_sampled") else "full"
    all_callbacks = [
        RankingEvaluation(data, protocol=protocol),
        tf.keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=patience, restore_best_weights=True
        ),
    ]
    if log_dir:
        all_callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    if checkpoint_dir:
        all_callbacks.append(
            tf.keras.callbacks.ModelCheckpoint(
                str(Path(checkpoint_dir) / "best.weights"),
                monitor=monitor,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            )
        )
    all_callbacks.extend(callbacks)
    ds = data.dataset(num_negatives=num_negatives, batch_size=batch_size, seed=seed)
    return model.fit(ds, epochs=epochs, callbacks=all_callbacks, verbose=verbose)

"""From a MovieLens split to `model.fit`-ready pipelines, score functions and evaluation.

`RankingData` gathers everything a leave-one-out ranking experiment needs once: the split,
each training interaction's recent history (computed strictly before it, so nothing leaks),
the user histories as of validation and test time, the items to mask in full ranking, and a joined table to adapt feature columns to. Any model
that follows `tfrec.models.base.RankingModel` trains and evaluates through it unchanged.
"""

from __future__ import annotations

import warnings
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
from tfrec.models.fast_scoring import fast_score_fn, supports_fast_scoring
from tfrec.optimizers import get_optimizer
from tfrec.towers import RECENT_MOVIES


def _concat(*tables: dict) -> dict:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def _take(table: dict, rows: np.ndarray) -> dict:
    return {k: np.asarray(v)[rows] for k, v in table.items()}


def feature_store(ml: MovieLens, seen: dict, history_length: int = 20) -> FeatureStore:
    """The id-keyed side-feature store for serving: users, movies, and each user's last
    `history_length` movies among `seen` (the interactions known at export time)."""
    history = None
    if history_length:
        last = last_history(seen, user_ids=ml.user_ids, length=history_length)
        history = {"user_id": last["user_id"], RECENT_MOVIES: last["history"]}
    return FeatureStore(ml.users, ml.movies, history)


def _tf(column) -> tf.Tensor:
    column = np.asarray(column)
    return tf.constant(utf8(column) if column.dtype.kind in "US" else column)


@dataclass
class ModelInputs:
    """A model's inputs split by where they vary: per user, per movie, per training row.

    Exists because string work (lookups, title tokenising, year parsing) is by far the most
    expensive part of a small recommender's step: doing it once per user and per movie and
    gathering ids per example makes training and full-catalogue scoring several times faster.
    Raw ids (``user_id``, ``movie_id``) are always included for models that embed ids
    themselves; features a model reads outside its towers (`raw_feature_keys`) are joined raw.
    """

    per_user: dict
    per_movie: dict
    per_row: dict

    @classmethod
    def build(cls, model, data: RankingData, split: str) -> ModelInputs:
        ml = data.movielens
        users = data.user_table(split)
        rows = data.train if split == "train" else {}
        per_user = {"user_id": _tf(ml.user_ids)}
        per_movie = {"movie_id": _tf(ml.movie_ids)}
        per_row = {}
        for tower, table, out in (
            (getattr(model, "user_tower", None), users, per_user),
            (getattr(model, "movie_tower", None), ml.movies, per_movie),
        ):
            for encoder in tower.encoders if tower is not None else ():
                key = tower.preprocessed_key(encoder)
                if encoder.key in table:
                    out[key] = encoder.preprocess({encoder.key: _tf(table[encoder.key])})
                elif encoder.key in rows:
                    per_row[key] = encoder.preprocess({encoder.key: _tf(rows[encoder.key])})
                else:
                    raise KeyError(
                        f"Field '{encoder.name}' reads '{encoder.key}', which neither the "
                        f"{'user' if table is users else 'movie'} table nor the training rows have."
                    )
        for name in getattr(model, "raw_feature_keys", ()):
            for table, out in ((users, per_user), (ml.movies, per_movie), (rows, per_row)):
                if name in table:
                    out[name] = _tf(table[name])
        return cls(per_user, per_movie, per_row)

    def gather(self, user_index, movie_index, row_index=None) -> dict:
        features = {k: tf.gather(v, user_index) for k, v in self.per_user.items()}
        features.update({k: tf.gather(v, movie_index) for k, v in self.per_movie.items()})
        if row_index is not None:
            features.update({k: tf.gather(v, row_index) for k, v in self.per_row.items()})
        return features


@dataclass
class RankingData:
    """A leave-one-out ranking experiment on one MovieLens variant (see module docstring)."""

    movielens: MovieLens
    split: Split
    train: dict
    exclude: dict
    history_length: int
    _exclude_cache: dict = field(default_factory=dict, repr=False)
    _inputs_cache: dict = field(default_factory=dict, repr=False)

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
        exclude = {"valid": split.train, "test": _concat(split.train, split.valid)}
        return cls(ml, split, train, exclude, history_length)

    def example_table(self) -> dict:
        """Training interactions joined with their side features, to adapt columns to."""
        table = dict(self.train)
        table.update(_take(self.movielens.movies, self.train["movie_index"]))
        if self.movielens.users is not None:
            table.update(_take(self.movielens.users, self.train["user_index"]))
        return table

    def user_table(self, split: str) -> dict:
        """One row per user (`MovieLens.user_ids` order): demographics plus the history as
        of `split` (for "train": empty, since training rows carry their own history)."""
        ml = self.movielens
        table = dict(ml.users) if ml.users is not None else {"user_id": ml.user_ids}
        if self.history_length and split != "train":
            last = last_history(
                self.exclude[split], user_ids=ml.user_ids, length=self.history_length
            )
            table[RECENT_MOVIES] = last["history"]
        return table

    def inputs(self, model, split: str) -> ModelInputs:
        """Preprocessed side features of `model`'s towers, computed once per user and movie."""
        key = (id(model), split)
        if key not in self._inputs_cache:
            self._inputs_cache[key] = ModelInputs.build(model, self, split)
        return self._inputs_cache[key]

    def dataset(
        self, model, num_negatives=4, batch_size=1024, distribution="uniform", alpha=0.75, seed=0
    ):
        """Training batches for `model`: positives plus negatives re-drawn each epoch, with the
        towers' preprocessed inputs gathered per row (no string work per example)."""
        ml = self.movielens
        sampler = NegativeSampler(
            self.train["user_index"],
            self.train["movie_index"],
            ml.num_movies,
            distribution=distribution,
            alpha=alpha,
            seed=seed,
        )
        positives = {
            "user_index": self.train["user_index"],
            "movie_index": self.train["movie_index"],
            "row": np.arange(len(self.train["user_index"]), dtype=np.int64),
        }
        inputs = self.inputs(model, "train")
        ds = training_dataset(
            positives,
            ml.movie_ids,
            sampler,
            num_negatives=num_negatives,
            batch_size=batch_size,
            seed=seed,
        )

        def assemble(batch):
            features = inputs.gather(batch["user_index"], batch["movie_index"], batch["row"])
            features["label"] = batch["label"]
            return features

        rows = len(self.train["user_index"]) * (1 + num_negatives)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
        return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def targets(self, split: str):
        part = {"valid": self.split.valid, "test": self.split.test}[split]
        return part["user_index"].astype(np.int64), part["movie_index"].astype(np.int64)

    def score_fn(
        self, model, split: str = "test", batch_pairs: int = 262144, factorised: bool = True
    ):
        """A `tfrec.evaluation` score function: (user_index [B], item_index [B, C]) -> scores.

        Features come from the preprocessed per-user / per-movie inputs (history as of
        `split`), so scoring the whole catalogue costs one model call per pair and no string
        processing. DeepFM uses the factorised scorer (`tfrec.models.fast_scoring`) unless
        `factorised` is False, which runs the whole head on every pair (the reference path)."""
        inputs = self.inputs(model, split)
        if getattr(model, "field_factorized", False):
            user = model.user_tower(inputs.per_user, training=False)
            movie = model.movie_tower(inputs.per_movie, training=False)
            if factorised and supports_fast_scoring(
                model
            ):  # DeepFM: user/item parts once, see fast_scoring
                return fast_score_fn(model, user, movie)

            @tf.function(reduce_retracing=True)
            def score(users, items):
                embeddings = tf.concat(
                    [tf.gather(user["embeddings"], users), tf.gather(movie["embeddings"], items)], 1
                )
                weights = tf.concat(
                    [tf.gather(user["weights"], users), tf.gather(movie["weights"], items)], 1
                )
                return model.logits_from_fields(embeddings, weights, training=False)

        else:

            @tf.function(reduce_retracing=True)
            def score(users, items):
                return model(inputs.gather(users, items), training=False)

        def score_fn(user_index, item_index):
            item_index = np.asarray(item_index, np.int64)
            users = np.repeat(np.asarray(user_index, np.int64), item_index.shape[1])
            items = item_index.reshape(-1)
            out = [
                score(
                    tf.constant(users[i : i + batch_pairs]), tf.constant(items[i : i + batch_pairs])
                )
                for i in range(0, users.size, batch_pairs)
            ]
            return np.concatenate([o.numpy() for o in out]).reshape(item_index.shape)

        return score_fn

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

    def evaluate(
        self,
        score_fn,
        split="test",
        ks=(10,),
        protocols=("sampled", "full"),
        seed=0,
        num_negatives=99,
    ):
        """Leave-one-out metrics of `score_fn` under the sampled (99 uniform) and full protocols."""
        users, targets = self.targets(split)
        exclude = self.exclude_set(split)
        n = self.movielens.num_movies
        results = {}
        if "sampled" in protocols:
            # A catalogue too small for `num_negatives` (tiny test data) gets as many as every
            # user can have; the result's "protocol" label records the number used.
            seen = np.diff(exclude.indptr)[users] + 1
            available = int(n - seen.max()) if seen.size else n
            if available < num_negatives:
                warnings.warn(
                    f"Only {available} negatives are available for some user; sampled ranking "
                    f"uses {available} instead of {num_negatives}.",
                    stacklevel=2,
                )
                num_negatives = max(available, 1)
            results["sampled"] = sampled_ranking(
                score_fn, users, targets, n, exclude, num_negatives=num_negatives, ks=ks, seed=seed
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
    optimizer="adam",
    num_negatives: int = 4,
    patience: int = 3,
    monitor: str = "val_full_ndcg@10",
    log_dir: str | None = None,
    checkpoint_dir: str | None = None,
    callbacks=(),
    verbose: int | str = "auto",
    seed: int = 0,
):
    """Compiles and fits `model` on `data` with negatives re-drawn every epoch.

    `optimizer` is "adam" (default), "lazy_adam" (row-wise Adam for embedding tables of
    10^5+ ids, see `tfrec.optimizers.LazyAdam`), "adagrad", or a tf.keras optimizer instance.
    Early stopping watches a validation *ranking* metric (full-ranking NDCG@10 by default)
    and restores the best epoch's weights; TensorBoard and checkpoint callbacks are added
    when `log_dir` / `checkpoint_dir` are given. Returns the Keras History.
    """
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1. Received: epochs={epochs}")
    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=get_optimizer(optimizer, learning_rate))
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
    ds = data.dataset(model, num_negatives=num_negatives, batch_size=batch_size, seed=seed)
    # One forward pass through `model.__call__` records its input structure, so that the
    # trained model can be saved (training itself goes through compute_loss).
    first = next(iter(ds))
    model({k: v for k, v in first.items() if k != "label"}, training=False)
    return model.fit(ds, epochs=epochs, callbacks=all_callbacks, verbose=verbose)

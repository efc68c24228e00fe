"""Training batches chosen by the model: what it reads and what its task learns from.

Why this exists: a model must not need a trainer of its own. A model says what its examples
are (`examples`): "interactions" (rows of (user, item) pairs) or "sequences" (windows of each
user's chronological history, `tfrec.data.sequences`); its task says what it learns from
(`objective`): labelled pairs with sampled negatives (pointwise BCE), positives whose batch
mates are the negatives (in-batch softmax), positives with a target index (catalogue softmax),
or targets with sampled negatives (BCE / gBCE). `PIPELINES` maps each (inputs, objective) to a
builder; every builder takes index-level batches from `tfrec.data` and gathers the model's
preprocessed features per row (`tfrec.features.inputs.ModelInputs`), so no string work
happens per example.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data.context import recent_history
from tfrec.data.pipelines import pointwise_dataset, positives_dataset
from tfrec.data.sampling import NegativeSampler
from tfrec.data.sequences import sequence_dataset, sequence_windows
from tfrec.data.splitdata import SplitData
from tfrec.features.inputs import ModelInputs
from tfrec.features.towers import RECENT_MOVIES


def training_rows(data: SplitData, history_length: int) -> dict:
    """The train split with each row's strictly-earlier history (when the model has one; a
    split that already carries the rows' histories, e.g. a replay subset, keeps them)."""
    rows = dict(data.train)
    if history_length and RECENT_MOVIES not in rows:
        rows[RECENT_MOVIES] = recent_history(data.train, length=history_length)
    return rows


def window_rows(data: SplitData, model) -> tuple[dict, dict]:
    """`sequence_windows` of the train split at the model's length, and each window's input
    sequence as movie ids ("" padded): the row table a sequence model is preprocessed from."""
    windows = sequence_windows(data.train, model.history_length)
    items = windows["items"][:, 1:] if model.cloze else windows["items"][:, :-1]
    ids = np.where(items >= 0, data.item_ids[np.maximum(items, 0)], "")
    return windows, {RECENT_MOVIES: ids}


def training_inputs(model, data: SplitData) -> ModelInputs:
    """`model`'s preprocessed training inputs: per-row histories (interactions) or each
    window's input sequence (sequences) next to the per-user and per-item features."""
    if model.examples == "sequences":
        rows = window_rows(data, model)[1]
    else:
        rows = training_rows(data, model.history_length)
    return ModelInputs.build(model, data, "train", rows=rows)


def _positives(data: SplitData) -> dict:
    train = data.train
    return {
        "user_index": train["user_index"].astype(np.int64),
        "movie_index": train["movie_index"].astype(np.int64),
        "row": np.arange(len(train["user_index"]), dtype=np.int64),
    }


def _attach(ds, inputs: ModelInputs, rows: int, batch_size: int, index_key: str):
    def assemble(batch):
        features = inputs.gather(batch["user_index"], batch["movie_index"], batch["row"])
        features[index_key] = batch["movie_index"]
        if "label" in batch:
            features["label"] = batch["label"]
        return features

    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _with_negatives(model, data, inputs, *, num_negatives, batch_size, distribution, seed):
    sampler = NegativeSampler(data.seen("train"), distribution, alpha=0.75, seed=seed)
    ds = pointwise_dataset(
        _positives(data), sampler, num_negatives=num_negatives, batch_size=batch_size, seed=seed
    )
    rows = len(data.train["user_index"]) * (1 + num_negatives)
    return _attach(ds, inputs, rows, batch_size, model.candidate_index_key)


def _positives_only(model, data, inputs, *, batch_size, seed, **_):
    ds = positives_dataset(_positives(data), batch_size=batch_size, seed=seed)
    rows = len(data.train["user_index"])
    return _attach(ds, inputs, rows, batch_size, model.candidate_index_key)


def pointwise(model, data, inputs, **settings):
    """Positives (label 1) and `num_negatives` sampled negatives each (label 0), per epoch."""
    return _with_negatives(model, data, inputs, **settings)


def in_batch(model, data, inputs, **settings):
    """Positives only; with mixed negatives and `num_negatives` > 0, sampled rows (label 0)
    join the batch as extra candidates."""
    if model.task.mixed_negatives and settings["num_negatives"] > 0:
        if model.task.logq != "none" and settings["distribution"] != "uniform":
            raise ValueError(
                "Mixed negatives are log-Q corrected as uniform draws (1 / catalogue_size). "
                f"Received: negative_distribution={settings['distribution']!r}. Fix: use "
                "'uniform', or logq='none'."
            )
        return _with_negatives(model, data, inputs, **settings)
    return _positives_only(model, data, inputs, **settings)


def catalogue(model, data, inputs, **settings):
    """Positives only; the model scores them against the whole catalogue (or a sample)."""
    model.set_catalogue(inputs.per_item)
    if hasattr(model.task, "set_item_counts") and model.task.sampling == "unigram":
        model.task.set_item_counts(data.item_counts("train"))
    return _positives_only(model, data, inputs, **settings)


def sequences(model, data, inputs, *, batch_size, seed, **_):
    """Windows of each user's sequence: every position's next item (or, for cloze models, the
    masked items) is a target; BCE / gBCE tasks also get negatives per position."""
    windows, _ = window_rows(data, model)
    model.set_catalogue(inputs.per_item)
    task = model.task
    if getattr(task, "sampling", None) == "unigram":
        task.set_item_counts(data.item_counts("train"))
    sampler, count = None, 0
    if task.objective == "negatives":
        sampler, count = NegativeSampler(data.seen("train"), seed=seed), task.num_negatives
    ds = sequence_dataset(
        windows,
        batch_size=batch_size,
        seed=seed,
        cloze_probability=model.mask_probability if model.cloze else None,
        sampler=sampler,
        num_negatives=count,
    )

    def assemble(batch):
        features = inputs.rows(batch["user_index"], batch["row"])
        features.update({k: v for k, v in batch.items() if k not in ("row", "user_index")})
        return features

    steps = -(-len(windows["user_index"]) // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


PIPELINES = {
    ("interactions", "pointwise"): pointwise,
    ("interactions", "in_batch"): in_batch,
    ("interactions", "catalogue"): catalogue,
    ("sequences", "catalogue"): sequences,
    ("sequences", "negatives"): sequences,
}
"""(model inputs, task objective) -> batch builder ``(model, data, inputs, **settings)``."""


def training_dataset(
    model, data: SplitData, num_negatives=8, batch_size=2048, distribution="uniform", seed=0,
    inputs: ModelInputs | None = None,
) -> tf.data.Dataset:  # fmt: skip
    """The batches `model` trains on, chosen by what it reads and its task (`PIPELINES`)."""
    objective = model.task.objective
    key = (model.examples, objective)
    if key not in PIPELINES:
        raise ValueError(
            f"No training pipeline for a model reading {model.examples!r} with a task of "
            f"objective {objective!r}. Known: {sorted(PIPELINES)}."
        )
    for name, value in (("batch_size", batch_size), ("num_negatives", num_negatives)):
        low = 1 if name == "batch_size" else 0
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    if objective == "pointwise" and num_negatives < 1:
        raise ValueError(
            "Pointwise ranking needs sampled negatives. Received: num_negatives=0. Fix: e.g. 4."
        )
    inputs = inputs or training_inputs(model, data)
    return PIPELINES[key](
        model,
        data,
        inputs,
        num_negatives=int(num_negatives),
        batch_size=int(batch_size),
        distribution=distribution,
        seed=seed,
    )

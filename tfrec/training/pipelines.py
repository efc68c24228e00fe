"""Training batches chosen by the model: its task's objective picks the pipeline.

Why this exists: a model must not need a trainer of its own. Its task says what it learns from
(`objective`): labelled pairs with sampled negatives (pointwise BCE), positives whose batch
mates are the negatives (in-batch softmax), or positives with a target index (catalogue
softmax). `PIPELINES` maps each objective to a builder; every builder takes the index-level
batches of `tfrec.data.pipelines` and gathers the model's preprocessed features per row
(`tfrec.features.inputs.ModelInputs`), so no string work happens per example.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data.context import recent_history
from tfrec.data.pipelines import pointwise_dataset, positives_dataset
from tfrec.data.sampling import NegativeSampler
from tfrec.data.splitdata import SplitData
from tfrec.features.inputs import ModelInputs
from tfrec.features.towers import RECENT_MOVIES


def training_rows(data: SplitData, history_length: int) -> dict:
    """The train split with each row's strictly-earlier history (when the model has one)."""
    rows = dict(data.train)
    if history_length:
        rows[RECENT_MOVIES] = recent_history(data.train, length=history_length)
    return rows


def training_inputs(model, data: SplitData) -> ModelInputs:
    """`model`'s preprocessed training inputs (per-row histories override per-user ones)."""
    return ModelInputs.build(model, data, "train", rows=training_rows(data, model.history_length))


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
        return _with_negatives(model, data, inputs, **settings)
    return _positives_only(model, data, inputs, **settings)


def catalogue(model, data, inputs, **settings):
    """Positives only; the model scores them against the whole catalogue (or a sample)."""
    model.set_catalogue(inputs.per_item)
    if hasattr(model.task, "set_item_counts") and model.task.sampling == "unigram":
        model.task.set_item_counts(data.item_counts("train"))
    return _positives_only(model, data, inputs, **settings)


PIPELINES = {"pointwise": pointwise, "in_batch": in_batch, "catalogue": catalogue}
"""Task objective -> batch builder ``(model, data, inputs, **settings) -> tf.data.Dataset``."""


def training_dataset(
    model, data: SplitData, num_negatives=8, batch_size=2048, distribution="uniform", seed=0,
    inputs: ModelInputs | None = None,
) -> tf.data.Dataset:  # fmt: skip
    """The batches `model` trains on, chosen by its task's objective (see `PIPELINES`)."""
    objective = model.task.objective
    if objective not in PIPELINES:
        raise ValueError(
            f"No training pipeline for objective {objective!r}. Known: {sorted(PIPELINES)}."
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
    return PIPELINES[objective](
        model,
        data,
        inputs,
        num_negatives=int(num_negatives),
        batch_size=int(batch_size),
        distribution=distribution,
        seed=seed,
    )

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
from tfrec.data.pipelines import grouped_batch_rows, pointwise_dataset, positives_dataset
from tfrec.data.sampling import NegativeSampler
from tfrec.data.seen import SeenItems
from tfrec.data.sequences import sequence_dataset, sequence_windows
from tfrec.data.splitdata import SplitData
from tfrec.features.inputs import ModelInputs
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models.base import CANDIDATES


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


def _attach(ds, inputs: ModelInputs, rows: int, batch_size: int, index_key: str, epochs=None):
    def assemble(batch):
        features = inputs.gather(batch["user_index"], batch["movie_index"], batch["row"])
        features[index_key] = batch["movie_index"]
        if "label" in batch:
            features["label"] = batch["label"]
        return features

    if epochs is None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _attach_grouped(ds, model, inputs: ModelInputs, steps: int, epochs=None):
    """Grouped pointwise batches (`pointwise_dataset(grouped=True)`): query features once per
    positive, its candidates' features under ``CANDIDATES`` as ``[P, 1 + k, ...]``."""

    def assemble(batch):
        features = inputs.rows(batch["user_index"], batch["row"])
        candidates = inputs.items(batch["movie_index"])
        candidates[model.candidate_index_key] = batch["movie_index"]
        features[CANDIDATES] = candidates
        features["label"] = batch["label"]
        return features

    if epochs is None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _sampler(seen, seed, on_worker: bool, **options) -> NegativeSampler:
    """The training sampler; on a `tf.distribute` worker its tables are built in the dataset
    function being traced (`NegativeSampler.built_here`). Draws are always explicitly seeded,
    so a tensor `seed` (a worker's salted seed) leaves the sampler's own seed unset."""
    own = seed if isinstance(seed, int | np.integer) else None
    sampler = NegativeSampler(seen, seed=own, **options)
    return sampler.built_here() if on_worker else sampler


def _with_negatives(model, data, inputs, *, num_negatives, batch_size, distribution, seed,
                    epochs=None, drop_remainder=False, on_worker=False, grouped=False):  # fmt: skip
    sampler = _sampler(data.seen("train"), seed, on_worker, distribution=distribution, alpha=0.75)
    ds = pointwise_dataset(
        _positives(data), sampler, num_negatives=num_negatives, batch_size=batch_size, seed=seed,
        epochs=epochs, drop_remainder=drop_remainder, grouped=grouped,
    )  # fmt: skip
    if grouped:
        steps = steps_per_epoch(model, data, num_negatives, batch_size)
        return _attach_grouped(ds, model, inputs, steps, epochs)
    rows = len(data.train["user_index"]) * (1 + num_negatives)
    return _attach(ds, inputs, rows, batch_size, model.candidate_index_key, epochs)


def _positives_only(model, data, inputs, *, batch_size, seed, epochs=None, drop_remainder=False,
                    **_):  # fmt: skip
    ds = positives_dataset(
        _positives(data), batch_size=batch_size, seed=seed, epochs=epochs,
        drop_remainder=drop_remainder,
    )  # fmt: skip
    rows = len(data.train["user_index"])
    return _attach(ds, inputs, rows, batch_size, model.candidate_index_key, epochs)


def pointwise(model, data, inputs, **settings):
    """Positives (label 1) and `num_negatives` sampled negatives each (label 0), per epoch,
    grouped by positive (the query side is encoded once per group)."""
    return _with_negatives(model, data, inputs, grouped=True, **settings)


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
    return _positives_only(model, data, inputs, **settings)


def sequences(model, data, inputs, *, batch_size, seed, epochs=None, drop_remainder=False,
              on_worker=False, **_):  # fmt: skip
    """Windows of each user's sequence: every position's next item (or, for cloze models, the
    masked items) is a target; BCE / gBCE tasks also get negatives per position."""
    windows, _ = window_rows(data, model)
    task = model.task
    sampler, count = None, 0
    if task.objective == "negatives":
        # The task's pool (`SampledBCE.exclude_seen`): the user's unseen items, or the whole
        # catalogue (a draw equal to its target is then masked by the model).
        if task.exclude_seen:
            excluded = data.seen("train")
        else:
            excluded = SeenItems.empty(data.num_users, data.num_items)
        sampler, count = _sampler(excluded, seed, on_worker), task.num_negatives
    ds = sequence_dataset(
        windows,
        batch_size=batch_size,
        seed=seed,
        cloze_probability=model.mask_probability if model.cloze else None,
        sampler=sampler,
        num_negatives=count,
        epochs=epochs,
        drop_remainder=drop_remainder,
    )

    def assemble(batch):
        features = inputs.rows(batch["user_index"], batch["row"])
        features.update({k: v for k, v in batch.items() if k not in ("row", "user_index")})
        return features

    if epochs is None:
        steps = -(-len(windows["user_index"]) // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def prepare(model, data: SplitData, inputs: ModelInputs) -> None:
    """What a model's objective needs besides batches: every item's features for catalogue
    scoring, and training item counts for unigram-sampled softmaxes. Runs eagerly, once per
    fit (never inside a `tf.distribute` dataset function)."""
    task = model.task
    if model.examples == "sequences" or task.objective == "catalogue":
        model.set_catalogue(inputs.per_item)
        if hasattr(task, "set_item_counts") and getattr(task, "sampling", None) == "unigram":
            task.set_item_counts(data.item_counts("train"))


def examples_per_epoch(model, data: SplitData, num_negatives: int) -> int:
    """Rows one epoch of `model`'s training batches holds (positives plus negatives, or
    sequence windows): what the number of steps per epoch is computed from."""
    if model.examples == "sequences":
        return len(sequence_windows(data.train, model.history_length)["user_index"])
    rows = len(data.train["user_index"])
    objective = model.task.objective
    if objective == "pointwise" or (
        objective == "in_batch" and model.task.mixed_negatives and num_negatives > 0
    ):
        return rows * (1 + int(num_negatives))
    return rows


def grouped_by_positive(model) -> bool:
    """Whether `model` trains on pointwise batches grouped by positive (`pointwise`)."""
    return model.examples == "interactions" and model.task.objective == "pointwise"


def steps_per_epoch(model, data, num_negatives: int, batch_size: int, drop_remainder=False):
    """Batches of `batch_size` in one epoch (the last partial one kept unless dropped).
    Pointwise batches are grouped by positive: ``batch_size // (1 + num_negatives)`` each."""
    rows = examples_per_epoch(model, data, num_negatives)
    if grouped_by_positive(model):
        rows = len(data.train["user_index"])
        batch_size = grouped_batch_rows(batch_size, num_negatives)
    steps = rows // batch_size if drop_remainder else -(-rows // batch_size)
    if steps < 1:
        raise ValueError(
            f"One epoch holds {rows} rows, fewer than one global batch of {batch_size}. Fix: a "
            "smaller batch_size (it is per replica: the global batch grows with the replicas)."
        )
    return steps


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
    inputs: ModelInputs | None = None, epochs=None, drop_remainder=False, on_worker=False,
    prepared=False,
) -> tf.data.Dataset:  # fmt: skip
    """The batches `model` trains on, chosen by what it reads and its task (`PIPELINES`).

    Without `epochs`, each pass over the dataset is one epoch, reshuffled and re-drawn from
    `seed` on every pass. With ``epochs=(start, stop)`` (stop None: endless) the dataset holds
    those epochs back to back, epoch e depending on (`seed`, e) only, which is what `fit` uses
    so that a resumed run re-creates any epoch exactly; `drop_remainder` drops each epoch's
    partial last batch (multi-replica training). `on_worker` builds the sampler's tables in the
    graph being traced (a `tf.distribute` dataset function); `prepared` skips `prepare` (the
    model's catalogue and item counts), which such a function must not run.
    """
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
    if not prepared:
        prepare(model, data, inputs)
    return PIPELINES[key](
        model,
        data,
        inputs,
        num_negatives=int(num_negatives),
        batch_size=int(batch_size),
        distribution=distribution,
        seed=seed,
        epochs=epochs,
        drop_remainder=bool(drop_remainder),
        on_worker=bool(on_worker),
    )

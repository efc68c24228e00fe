"""Index-level training batches, model-free: positives with sampled negatives, or positives alone.

Why this exists: every model trains on one of a few kinds of batches, and building them is data
work that must not know the model. These pipelines emit dicts of row indices
(``user_index``, ``movie_index``, any extra per-row columns such as ``row``) plus ``label``
where negatives are mixed in; `tfrec.training` then gathers each model's preprocessed features
by index. Per-user sequences live in `tfrec.data.sequences`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data.sampling import NegativeSampler


def epoch_seed(seed, epoch) -> tf.Tensor:
    """The int64 seed of epoch `epoch` of a pipeline seeded with `seed` (ints or tensors).

    Exists so that an epoch's randomness (order, negatives, masks) depends on (seed, epoch)
    alone, never on how many times a dataset object was iterated before: a run resumed at
    epoch e re-creates exactly the batches an uninterrupted run saw in epoch e."""
    pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.stateless_uniform([], pair, minval=None, maxval=None, dtype=tf.int64)


def over_epochs(epochs, make_epoch) -> tf.data.Dataset:
    """Epochs ``start, start + 1, ...`` (`epochs` = (start, stop); stop None: endless) one
    after the other, each ``make_epoch(epoch)`` (a dataset of that epoch's batches)."""
    start, stop = epochs
    for name, value in (("start", start), ("stop", stop)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer)
        ):
            raise ValueError(f"epochs must be (start, stop) integers. Received: {name}={value!r}")
    if stop is not None and not 0 <= start < stop:
        raise ValueError(f"epochs must satisfy 0 <= start < stop. Received: epochs={epochs!r}")
    numbers = (
        tf.data.Dataset.counter(int(start))
        if stop is None
        else tf.data.Dataset.range(int(start), int(stop))
    )
    return numbers.flat_map(make_epoch)


def _columns(positives: dict) -> tuple[dict, int]:
    """The positives' columns as arrays, checked for the index columns and equal lengths."""
    columns = {name: np.asarray(value) for name, value in positives.items()}
    for name in ("user_index", "movie_index"):
        if name not in columns:
            raise ValueError(
                f"positives needs a {name!r} column. Received: columns={sorted(columns)}."
            )
    lengths = {len(value) for value in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            f"positives must be a non-empty table of equal-length columns. Received: lengths "
            f"{ {name: len(value) for name, value in columns.items()} }."
        )
    return columns, lengths.pop()


def pointwise_dataset(
    positives: dict[str, np.ndarray],
    sampler: NegativeSampler,
    num_negatives: int = 4,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int | None = None,
    movie_ids: np.ndarray | None = None,
    epochs: tuple | None = None,
    drop_remainder: bool = False,
    grouped: bool = False,
) -> tf.data.Dataset:
    """Batches of positives (label 1.0) mixed with freshly sampled negatives (label 0.0).

    Every epoch (each iteration over the dataset) emits each row of ``positives`` once plus
    ``num_negatives`` copies whose ``movie_index`` (and ``movie_id``, when ``movie_ids`` lists
    the catalogue's ids) are replaced by negatives drawn by ``sampler`` for that row's user;
    all other columns (1-D or 2-D, e.g. a history matrix) are copied from the positive row. Elements are dicts of
    batched tensors (strings as tf.string) with an extra float32 ``label``; batches hold
    ``batch_size`` rows (the last one fewer). With ``shuffle`` the positives' order and the
    rows within each chunk of ~64k rows are shuffled anew each epoch. ``seed`` makes the whole
    sequence of epochs reproducible; negatives still differ from epoch to epoch.

    With ``epochs=(start, stop)`` the dataset holds those epochs back to back (``stop`` None:
    endless), epoch e's order and negatives depending only on (``seed``, e) (`epoch_seed`;
    ``seed`` may be a tensor), batches never spanning two epochs; ``drop_remainder`` drops each
    epoch's last partial batch. Without it, each iteration over the dataset is one epoch.
    """
    if not isinstance(sampler, NegativeSampler):
        raise ValueError(f"sampler must be a NegativeSampler. Received: {type(sampler).__name__}.")
    for name, value in (("num_negatives", num_negatives), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an int >= 1. Received: {name}={value!r}.")
    if "label" in positives:
        raise ValueError("positives already has a 'label' column. Fix: rename or drop it.")
    if movie_ids is None and "movie_id" in positives:
        raise ValueError(
            "positives has a 'movie_id' column, which negatives would copy from their positive "
            "(a label leak). Received: movie_ids=None. Fix: pass movie_ids (the catalogue's "
            "ids) so negatives get their own, or drop the column."
        )
    if movie_ids is not None and np.asarray(movie_ids).shape != (sampler.num_items,):
        raise ValueError(
            f"movie_ids must list the sampler's {sampler.num_items} items. Received: shape "
            f"{np.asarray(movie_ids).shape}. Fix: pass MovieLens.movie_ids."
        )
    columns, count = _columns(positives)
    users, items = columns["user_index"], columns["movie_index"]
    if users.min() < 0 or items.min() < 0 or items.max() >= sampler.num_items:
        raise ValueError(
            f"positives' indices are out of range. Received: user_index min {users.min()}, "
            f"movie_index in [{items.min()}, {items.max()}], sampler.num_items="
            f"{sampler.num_items}. Fix: build the sampler from the same catalogue."
        )
    group = 1 + int(num_negatives)
    per_chunk = max(1, -(-max(int(batch_size), 1 << 16) // group))
    num_chunks = -(-count // per_chunk)
    tensors = {name: tf.constant(value) for name, value in columns.items()}
    tensors["movie_index"] = tf.cast(tensors["movie_index"], tf.int64)
    tensors["user_index"] = tf.cast(tensors["user_index"], tf.int64)
    catalogue = None if movie_ids is None else tf.constant(np.asarray(movie_ids))

    def chunk(order, epoch_seed, index):
        rows = order[index * per_chunk : tf.minimum((index + 1) * per_chunk, count)]
        rows = tf.sort(rows)  # ascending rows keep the gathers below cache-friendly
        seeds = tf.random.experimental.stateless_split(tf.stack([epoch_seed, index]), 2)
        picked = {name: tf.gather(value, rows) for name, value in tensors.items()}
        negatives = sampler.sample(picked["user_index"], group - 1, seed=seeds[0])
        items = tf.concat([picked["movie_index"][:, None], negatives], axis=1)
        if grouped:
            out = dict(picked, movie_index=items)
            out["label"] = tf.tile(tf.one_hot([0], group, dtype=tf.float32), [tf.size(rows), 1])
            if catalogue is not None:
                out["movie_id"] = tf.gather(catalogue, items)
            if shuffle:  # the positives of the chunk in a new order (they were sorted)
                mixed = tf.random.experimental.stateless_shuffle(
                    tf.range(tf.size(rows, out_type=tf.int64)), seed=seeds[1]
                )
                out = {name: tf.gather(value, mixed) for name, value in out.items()}
            return out
        # Row r of the chunk is slot r % group of positive r // group (slot 0: the positive).
        out = {name: tf.repeat(value, group, axis=0) for name, value in picked.items()}
        out["movie_index"] = tf.reshape(items, [-1])
        out["label"] = tf.tile(tf.one_hot(0, group, dtype=tf.float32), tf.shape(rows))
        if catalogue is not None:
            out["movie_id"] = tf.gather(catalogue, out["movie_index"])
        if shuffle:  # mix positives and negatives within the chunk (local, cheap gathers)
            mixed = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(out["label"], out_type=tf.int64)[0]), seed=seeds[1]
            )
            out = {name: tf.gather(value, mixed) for name, value in out.items()}
        return out

    def epoch(epoch_seed):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([epoch_seed, -1]))
        chunks = tf.data.Dataset.range(num_chunks)
        return chunks.map(
            lambda index: chunk(order, epoch_seed, index),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    rows = grouped_batch_rows(batch_size, num_negatives) if grouped else int(batch_size)
    if epochs is not None:
        dataset = over_epochs(
            epochs, lambda e: epoch(epoch_seed(seed, e)).rebatch(rows, drop_remainder)
        )
        return dataset.prefetch(tf.data.AUTOTUNE)
    epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    dataset = epochs.flat_map(epoch).rebatch(rows, drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def grouped_batch_rows(batch_size: int, num_negatives: int) -> int:
    """Positives per batch of `pointwise_dataset` with ``grouped=True`` (at least one)."""
    return max(1, int(batch_size) // (1 + int(num_negatives)))


def positives_dataset(
    positives: dict[str, np.ndarray],
    batch_size: int = 1024,
    seed: int | None = None,
    epochs: tuple | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of positives alone, reshuffled every epoch (for in-batch softmax training).

    The other rows of a batch act as each row's negatives, so no sampler is involved; the
    batches carry the positives' columns (``user_index``, ``movie_index``, ...) as int64 or as
    given, and no ``label``. `epochs` and `drop_remainder` as for `pointwise_dataset`.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}.")
    columns, count = _columns(positives)
    for name in ("user_index", "movie_index"):
        columns[name] = columns[name].astype(np.int64)
    if epochs is not None:
        tensors = {name: tf.constant(value) for name, value in columns.items()}

        def epoch(number):
            pair = tf.stack([epoch_seed(seed, number), tf.constant(-1, tf.int64)])
            order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), pair)
            rows = tf.data.Dataset.from_tensor_slices(order).batch(int(batch_size), drop_remainder)
            return rows.map(lambda r: {name: tf.gather(t, r) for name, t in tensors.items()})

        return over_epochs(epochs, epoch).prefetch(tf.data.AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(int(batch_size), drop_remainder).prefetch(tf.data.AUTOTUNE)

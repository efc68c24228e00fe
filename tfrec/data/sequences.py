"""Per-user item sequences for sequential recommenders: training windows and next-item targets.

Why this exists: a sequential model (GRU4Rec, SASRec, BERT4Rec) reads a user as the ordered list
of what they watched and learns to predict what comes next. Its training examples are windows
of each user's chronological sequence, left-padded to a fixed length L so that the most recent
item always sits in the last column; every position whose next item is known is a target. Long
histories are cut from the end into consecutive windows so no interaction is wasted; the
history a model sees at valid/test time is `tfrec.data.last_history` of what is known then.
Time order is (timestamp, file order), as everywhere in `tfrec.data`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.data.pipelines import epoch_seed, over_epochs
from tfrec.data.splits import rank_in_user, require_column, time_order

PAD = -1
"""Item index marking padding in sequences and positions without a target."""


def _check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise ValueError(
            f"length must be a positive integer. Received: length={length!r}. Fix: e.g. 50."
        )
    return int(length)


def sequence_windows(interactions: dict, length: int) -> dict:
    """Every user's chronological item sequence cut into left-padded windows of ``length + 1``.

    A user with n interactions gives ``ceil((n - 1) / length)`` windows (none if n < 2): the
    last window ends at the newest item, each earlier one ends where the next one's targets
    begin, and the first is left-padded with `PAD`. Column t of ``items[:, :-1]`` is followed by
    column t of ``items[:, 1:]``, so ``inputs = items[:, :-1]`` and ``targets = items[:, 1:]``
    give each position's next item. A position counts only where its input is real
    (``inputs >= 0``): the last padding position's target is the user's first item, which has
    nothing before it. So masked, every item after a user's first is a target exactly once.

    Args:
      interactions: Table with ``user_index``, ``movie_index`` and ``timestamp`` columns.
      length: L, the input length (the model's ``max_length``).

    Returns:
      ``{"user_index": [W], "items": [W, L + 1]}`` int64, windows of one user consecutive
      and oldest first.
    """
    length = _check_length(length)
    users = np.asarray(require_column(interactions, "user_index"), np.int64)
    items = np.asarray(require_column(interactions, "movie_index"), np.int64)
    order, _ = time_order(interactions, per_user=True)
    rank, size = rank_in_user(order, users)
    users, items = users[order], items[order]
    starts = np.flatnonzero(rank == 0)
    sizes = size[starts]
    count = np.where(sizes >= 2, -(-(sizes - 1) // length), 0)  # windows per user
    window_user = np.repeat(np.arange(starts.size), count)
    # Window j (counted from the newest) of a user ends at position size - 1 - j * length.
    from_newest = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    from_newest = np.repeat(count, count) - 1 - from_newest  # oldest window first
    end = starts[window_user] + sizes[window_user] - 1 - from_newest * length
    offsets = np.arange(-length, 1)[None, :]
    positions = end[:, None] + offsets
    valid = positions >= starts[window_user][:, None]
    windows = np.where(valid, items[np.maximum(positions, 0)], PAD)
    return {"user_index": users[starts[window_user]], "items": windows.astype(np.int64)}


def sequence_dataset(
    windows: dict,
    batch_size: int = 128,
    seed: int | None = None,
    cloze_probability: float | None = None,
    final_only_probability: float = 0.1,
    sampler=None,
    num_negatives: int = 0,
    epochs: tuple | None = None,
    drop_remainder: bool = False,
):
    """Index-level training batches of sequence windows, reshuffled and re-drawn every epoch.

    Each element: ``row`` ``[B]`` (the window, to gather its preprocessed inputs by),
    ``user_index`` ``[B]`` and ``targets`` ``[B, L]`` (catalogue indices, `PAD` where nothing is
    predicted). Causal (default): position t's target is the item after input position t, so
    inputs are ``items[:, :-1]`` and targets ``items[:, 1:]`` where the input is a real item. Cloze (``cloze_probability``, as
    in BERT4Rec): inputs are ``items[:, 1:]``; each real position is masked with that
    probability (``masked`` ``[B, L]``; at least one per row), and with probability
    `final_only_probability` a row masks only its newest item, as at prediction time; targets
    are the masked items. With a `sampler` and `num_negatives`, ``negatives`` ``[B, L, k]`` holds
    the sampler's draws for each position's user, for losses that need them. `epochs` and
    `drop_remainder` as for `tfrec.data.pointwise_dataset` (each epoch's order, masks and
    negatives then depend on (seed, epoch) only).
    """
    items = np.asarray(windows["items"], np.int64)
    users = np.asarray(windows["user_index"], np.int64)
    if items.ndim != 2 or items.shape[0] != users.size or items.shape[0] == 0:
        raise ValueError(
            "windows must hold user_index [W] and items [W, L + 1] with W >= 1. Received: "
            f"user_index.shape={users.shape}, items.shape={items.shape}. Fix: build them with "
            "sequence_windows from a split with users of 2+ interactions."
        )
    if cloze_probability is not None and not 0.0 < float(cloze_probability) < 1.0:
        raise ValueError(
            f"cloze_probability must be in (0, 1). Received: cloze_probability={cloze_probability!r}"
        )
    if num_negatives and sampler is None:
        raise ValueError("num_negatives > 0 needs a NegativeSampler. Received: sampler=None")
    count = items.shape[0]
    tensors = {
        "row": np.arange(count, dtype=np.int64),
        "user_index": users,
        "items": items,
    }
    if epochs is None:
        ds = tf.data.Dataset.from_tensor_slices(tensors)
        ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(int(batch_size), drop_remainder)
        ds = tf.data.Dataset.zip(
            (ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2))
        )
    else:
        constants = {name: tf.constant(value) for name, value in tensors.items()}

        def epoch(number):
            base = epoch_seed(seed, number)
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), tf.stack([base, tf.constant(-1, tf.int64)])
            )
            rows = tf.data.Dataset.from_tensor_slices(order).batch(int(batch_size), drop_remainder)
            return rows.enumerate().map(
                lambda index, r: (
                    {name: tf.gather(t, r) for name, t in constants.items()},
                    tf.stack([base, index]),
                )
            )

        ds = over_epochs(epochs, epoch)

    def assemble(batch, rand):
        seeds = tf.random.experimental.stateless_split(tf.cast(rand, tf.int64), 3)
        window = batch["items"]
        out = {"row": batch["row"], "user_index": batch["user_index"]}
        if cloze_probability is None:  # no target where the input is padding (a user's first item)
            out["targets"] = tf.where(window[:, :-1] >= 0, window[:, 1:], PAD)
        else:
            sequence = window[:, 1:]
            real = sequence >= 0
            draw = tf.random.stateless_uniform(tf.shape(sequence), seeds[0]) < cloze_probability
            final = tf.one_hot(tf.shape(sequence)[1] - 1, tf.shape(sequence)[1], on_value=True,
                               off_value=False, dtype=tf.bool)[None, :]  # fmt: skip
            only_final = tf.random.stateless_uniform(tf.shape(sequence)[:1], seeds[1])
            only_final = (only_final < final_only_probability)[:, None]
            masked = tf.where(only_final, final & real, draw & real)
            none = ~tf.reduce_any(masked, axis=1, keepdims=True)
            masked = masked | (none & final & real)
            out["masked"] = masked
            out["targets"] = tf.where(masked, sequence, PAD)
        if num_negatives:
            length = tf.shape(out["targets"])[1]
            flat_users = tf.repeat(batch["user_index"], length)
            negatives = sampler.sample(flat_users, num_negatives, seed=seeds[2])
            out["negatives"] = tf.reshape(negatives, [-1, length, num_negatives])
        return out

    return ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

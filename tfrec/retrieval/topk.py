"""Graph-side helpers shared by the in-graph indexes: exclusion masks and fixed-width top-k.

Exists so that `BruteForce`, `IVFIndex` and the two-stage pipeline agree on two conventions:
excluded items are given per query as a ``[B, S]`` int64 matrix of catalogue indices padded
with -1, and every search returns exactly ``[B, k]`` results, padded with index -1 and score
-inf when fewer than k candidates exist (a partition too small, or everything excluded).
"""

from __future__ import annotations

import tensorflow as tf

NO_ITEM = -1
"""Index returned (and accepted as padding in exclude lists) where there is no item."""


def exclusion_mask(candidates: tf.Tensor, exclude: tf.Tensor) -> tf.Tensor:
    """``[B, C]`` bool: whether ``candidates[b, c]`` is one of ``exclude[b, :]``.

    Runs as one batched binary search (`tf.searchsorted`) over each query's sorted exclude
    list, so the cost is ``C log S``, not ``C * S``. Padding (-1) never matches a candidate.
    """
    candidates = tf.cast(candidates, tf.int64)
    exclude = tf.cast(exclude, tf.int64)
    batch = tf.shape(exclude)[0]
    padded = tf.concat([tf.fill([batch, 1], tf.constant(NO_ITEM, tf.int64)), exclude], axis=1)
    ordered = tf.sort(padded, axis=1)
    position = tf.searchsorted(ordered, candidates, side="left")
    position = tf.minimum(position, tf.shape(ordered, out_type=position.dtype)[1] - 1)
    found = tf.gather(ordered, position, batch_dims=1)
    return tf.logical_and(tf.equal(found, candidates), candidates >= 0)


def padded_top_k(scores: tf.Tensor, items: tf.Tensor | None, k: tf.Tensor):
    """Top-k of ``scores [B, C]`` as ``(scores [B, k], items [B, k])`` for any C.

    ``items [B, C]`` names each column's item; None means column c is item c.

    Entries scored -inf (invalid or excluded) never count as found: they come back as item
    -1 with score -inf, as does every slot beyond C.
    """
    k = tf.cast(k, tf.int32)
    available = tf.minimum(k, tf.shape(scores)[1])
    top, position = tf.math.top_k(scores, k=available)
    if items is None:
        found = tf.cast(position, tf.int64)
    else:
        found = tf.gather(tf.cast(items, tf.int64), position, batch_dims=1)
    found = tf.where(tf.math.is_finite(top), found, tf.constant(NO_ITEM, tf.int64))
    pad = [[0, 0], [0, k - available]]
    top = tf.pad(top, pad, constant_values=float("-inf"))
    return top, tf.pad(found, pad, constant_values=NO_ITEM)


def check_k(k: tf.Tensor, name: str = "k") -> tf.Tensor:
    """`k` as int32 with graph assertions that it is >= 0 and, for wider types, that it fits in
    int32 (checked before the cast, which would wrap 2**32 + 2 around to 2): a clear error at
    query time, e.g. "`k` must be >= 0 (the number of results per query). Received: k= -1"."""
    k = tf.convert_to_tensor(k)
    checks = [
        tf.debugging.Assert(
            k >= 0,
            [f"`{name}` must be >= 0 (the number of results per query). Received: {name}=", k],
        )
    ]
    if k.dtype != tf.int32:
        checks.append(
            tf.debugging.Assert(
                k <= tf.cast(tf.int32.max, k.dtype),
                [f"`{name}` must be at most {tf.int32.max} (int32). Received: {name}=", k],
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(tf.cast(k, tf.int32))


def search_outputs(scores: tf.Tensor, items: tf.Tensor, ids: tf.Tensor | None) -> dict:
    """The named outputs of an index's serving signature: ``scores``, ``indices`` and, when
    the index knows them, ``ids`` ("" where a slot is padding, i.e. index -1)."""
    out = {"scores": scores, "indices": items}
    if ids is not None:
        found = tf.gather(ids, tf.maximum(items, 0))
        out["ids"] = tf.where(items >= 0, found, "")
    return out

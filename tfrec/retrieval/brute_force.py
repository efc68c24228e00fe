"""Exact in-graph top-k retrieval: one matrix product against every candidate vector.

`BruteForce` exists as the reference every approximate index is measured against and as the
index of choice for catalogues up to ~10^5 items, where one ``[B, d] x [d, N]`` product is
already fast. It is a plain `tf.Module` of stock TensorFlow ops, so it exports inside any
SavedModel and TF Serving runs it as is (unlike TFRS's ScaNN layer, which needs custom ops).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function
from tfrec.retrieval.topk import check_k, padded_top_k, search_outputs


def check_vectors(vectors, name: str = "vectors") -> np.ndarray:
    """`vectors` as a finite float32 ``[N, d]`` array with N, d >= 1, or a clear ValueError."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"`{name}` must be a non-empty [num_items, dim] matrix. Received: {name}.shape="
            f"{array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` holds NaN or infinite values. Fix: check the embeddings.")
    return array


def check_ids(ids, size: int) -> np.ndarray | None:
    """Optional item ids as an array with one id per indexed vector (object ids as str, so
    they save without pickle), or a clear ValueError."""
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.dtype.kind == "O":
        ids = ids.astype(str)
    if ids.shape != (size,):
        raise ValueError(
            f"`ids` must hold one id per indexed vector ({size}). Received: ids.shape={ids.shape}"
        )
    return ids


def ids_variable(ids, num_items: int):
    """The optional id of each item as a string variable (returned by `serve`), or None."""
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.shape != (num_items,):
        raise ValueError(
            f"`ids` must hold one id per vector ({num_items}). Received: ids.shape={ids.shape}"
        )
    strings = ids.astype(str) if ids.dtype.kind not in "SU" else ids
    if strings.dtype.kind == "U":
        strings = np.char.encode(strings, "utf-8")
    return tf.Variable(strings, trainable=False, name="ids")


@contextlib.contextmanager
def staged_directory(path):
    """Yields a hidden temporary directory beside `path` that replaces `path` on success.

    Whatever the block writes appears at `path` all at once; on an error nothing is left
    behind and an existing `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_module(module: tf.Module, path, signatures) -> Path:
    """Saves `module` as a SavedModel at `path` atomically (temp directory, then rename)."""
    with staged_directory(path) as staging:
        tf.saved_model.save(module, str(staging), signatures=signatures)
    return Path(path)


class BruteForce(tf.Module):
    """Exact maximum-inner-product search over a fixed set of vectors.

    Args:
      vectors: ``[N, d]`` candidate vectors (e.g. `TwoTower.movie_vectors` of the catalogue).
      ids: Optional ``[N]`` ids returned by the `serve` signature next to the indices.

    Example:
      >>> index = BruteForce(movie_vectors, ids=movie_ids)
      >>> scores, items = index.search(user_vectors, k=10)   # items: catalogue indices
      >>> index.save("exports/brute_force")                   # signature: queries, k
    """

    def __init__(self, vectors, ids=None, name=None):
        super().__init__(name=name)
        vectors = check_vectors(vectors)
        self.num_items, self.dim = vectors.shape
        self.vectors = tf.Variable(vectors, trainable=False, name="vectors")
        self.ids = ids_variable(ids, self.num_items)

    def search(self, queries, k, exclude=None):
        """``(scores [B, k], items [B, k])``: the k best catalogue indices per query.

        `exclude` is an optional ``[B, S]`` int64 matrix of catalogue indices to leave out
        (-1 padded). Missing results (k > N, or too much excluded) are item -1, score -inf.
        """
        queries = tf.convert_to_tensor(queries, tf.float32)
        k = check_k(k)
        scores = tf.matmul(queries, self.vectors, transpose_b=True)
        if exclude is not None:
            exclude = tf.cast(exclude, tf.int64)
            rows = tf.broadcast_to(
                tf.range(tf.shape(exclude, out_type=tf.int64)[0])[:, None], tf.shape(exclude)
            )
            valid = exclude >= 0
            coords = tf.stack([tf.boolean_mask(rows, valid), tf.boolean_mask(exclude, valid)], 1)
            minus_inf = tf.fill(tf.shape(coords)[:1], float("-inf"))
            scores = tf.tensor_scatter_nd_update(scores, coords, minus_inf)
        return padded_top_k(scores, None, k)

    @signature_function
    def serve(self, queries, k):
        """Signature function: ``scores``, ``indices`` (and ``ids``) of the top k."""
        scores, items = self.search(queries, k)
        return search_outputs(scores, items, self.ids)

    def signatures(self) -> dict:
        """``serving_default``: queries ``[B, d]`` float32, k int32 scalar."""
        return {
            "serving_default": self.serve.get_concrete_function(
                tf.TensorSpec([None, self.dim], tf.float32, name="queries"),
                tf.TensorSpec([], tf.int32, name="k"),
            )
        }

    def save(self, path) -> Path:
        """Writes a SavedModel (stock ops only) atomically; returns its directory."""
        return save_module(self, path, self.signatures())

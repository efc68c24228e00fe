"""An inverted-file (IVF) approximate index made of stock TensorFlow ops, for TF Serving.

Why: exact search costs one dot product per catalogue item per query; at 10^6 items that is
the bottleneck of a recommend call. An IVF index partitions the items with k-means into
`nlist` cells and, per query, scores only the items of the `nprobe` cells whose centroids are
nearest, trading a little recall for a large speed-up. TFRS's ScaNN layer does the same (and
more) but needs custom ops that stock TF Serving lacks; this index uses only gathers, matmuls,
ragged ranges and top_k, so it exports inside the recommender's SavedModel and `nprobe` and
`k` are chosen per request.

Storage is CSR: item vectors sorted by cell, ``offsets[c]:offsets[c + 1]`` holding cell c,
so unbalanced cells cost no padding. Partitions come from L2 k-means, which for the unit-norm
vectors of a two-tower model also partitions by inner product; probing picks the cells whose
Voronoi region is nearest the query (largest ``q·c - |c|²/2``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function
from tfrec.retrieval.brute_force import check_vectors, ids_variable, save_module
from tfrec.retrieval.topk import check_k, exclusion_mask, padded_top_k, search_outputs

_CHUNK = 32768
_PADDED_BATCH = 8


def _check_int(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid (L2) of each vector, ``[N]`` int64, in chunks of rows."""
    half_norms = 0.5 * np.sum(centroids * centroids, axis=1)
    out = np.empty(len(vectors), np.int64)
    for start in range(0, len(vectors), _CHUNK):  # blocks of rows, each one matrix product
        block = vectors[start : start + _CHUNK] @ centroids.T - half_norms
        out[start : start + _CHUNK] = np.argmax(block, axis=1)
    return out


def _plus_plus(sample, num_clusters, rng):
    """k-means++ seeding (D² sampling) on a pool of at most 8 points per cluster.

    Random seeding (FAISS's choice) can put two seeds in one blob and merge two others; D²
    sampling makes that unlikely. The loop runs over clusters, each step one vectorised
    distance update over the pool.
    """
    pool = sample[rng.choice(len(sample), min(len(sample), 8 * num_clusters), replace=False)]
    chosen = [int(rng.integers(len(pool)))]
    d2 = np.sum((pool - pool[chosen[0]]) ** 2, axis=1)
    for _ in range(num_clusters - 1):
        total = d2.sum()
        pick = (
            int(rng.choice(len(pool), p=d2 / total)) if total > 0 else int(rng.integers(len(pool)))
        )
        chosen.append(pick)
        d2 = np.minimum(d2, np.sum((pool - pool[pick]) ** 2, axis=1))
    return pool[chosen].copy()


def kmeans(vectors, num_clusters: int, iterations: int = 15, train_size=None, seed: int = 0):
    """Lloyd's k-means (L2) on at most `train_size` sampled vectors: ``[num_clusters, d]``.

    Seeded with k-means++; vectorised: assignment is a chunked matrix product, the update one weighted
    `np.bincount` per dimension. Empty clusters are re-seeded with random members of the
    largest cluster (plus tiny noise), as FAISS does. `train_size` defaults to 64 points per
    cluster.
    """
    vectors = check_vectors(vectors)
    num_clusters = _check_int(num_clusters, "num_clusters")
    iterations = _check_int(iterations, "iterations", low=0)
    if num_clusters > len(vectors):
        raise ValueError(
            f"k-means needs at least as many vectors as clusters. Received: num_clusters="
            f"{num_clusters}, {len(vectors)} vectors. Fix: use a smaller nlist."
        )
    rng = np.random.default_rng(seed)
    train_size = min(len(vectors), train_size or 64 * num_clusters)
    sample = vectors[rng.choice(len(vectors), train_size, replace=False)]
    centroids = _plus_plus(sample, num_clusters, rng)
    for _ in range(iterations):
        labels = assign(sample, centroids)
        counts = np.bincount(labels, minlength=num_clusters)
        present = counts > 0
        sums = np.stack(
            [np.bincount(labels, sample[:, j], num_clusters) for j in range(sample.shape[1])], 1
        )  # one bincount per dimension (d of them), each over all points
        centroids[present] = sums[present] / counts[present, None]
        empty = np.flatnonzero(~present)
        if empty.size:
            donors = np.flatnonzero(labels == np.argmax(counts))
            picks = sample[rng.choice(donors, empty.size)]
            centroids[empty] = picks + 1e-4 * rng.standard_normal(picks.shape)
    return centroids.astype(np.float32)


class IVFIndex(tf.Module):
    """Approximate maximum-inner-product search: k-means cells, probe the nearest few.

    Args:
      vectors: ``[N, d]`` candidate vectors (unit norm works best, see module docstring).
      ids: Optional ``[N]`` ids returned by the `serve` signature next to the indices.
      nlist: Number of cells; default about ``2 * sqrt(N)`` (fewer, larger cells than FAISS's
        usual 4-16 sqrt(N): in a TF graph the per-cell work is cheap next to per-op overhead).
      nprobe: Default number of cells scanned per query (`search` and `serve` take their
        own); more cells = higher recall, slower queries.
      iterations: k-means iterations.
      train_size: Vectors sampled to train k-means (default 64 per cell).
      seed: Seed of the sampling and initialisation.

    Example:
      >>> index = IVFIndex(movie_vectors, ids=movie_ids, nlist=1024)
      >>> scores, items = index.search(user_vectors, k=10, nprobe=32)
      >>> index.save("exports/ivf")   # signature: queries, k, nprobe
    """

    def __init__(
        self,
        vectors,
        ids=None,
        nlist=None,
        nprobe=8,
        iterations=15,
        train_size=None,
        seed=0,
        name=None,
    ):
        super().__init__(name=name)
        vectors = check_vectors(vectors)
        self.num_items, self.dim = vectors.shape
        nlist = nlist if nlist is not None else max(1, int(round(2 * np.sqrt(self.num_items))))
        self.nlist = min(_check_int(nlist, "nlist"), self.num_items)
        self.default_nprobe = min(_check_int(nprobe, "nprobe"), self.nlist)
        centroids = kmeans(vectors, self.nlist, iterations, train_size, seed)
        cells = assign(vectors, centroids)
        order = np.argsort(cells, kind="stable")
        counts = np.bincount(cells, minlength=self.nlist)
        self.cell_sizes = counts
        self.centroids = tf.Variable(centroids, trainable=False, name="centroids")
        self.half_norms = tf.Variable(
            0.5 * np.sum(centroids * centroids, axis=1), trainable=False, name="half_norms"
        )
        self.offsets = tf.Variable(
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            trainable=False,
            name="offsets",
        )
        self.vectors = tf.Variable(vectors[order], trainable=False, name="vectors")
        self.items = tf.Variable(order.astype(np.int64), trainable=False, name="items")
        self.ids = ids_variable(ids, self.num_items)

    @property
    def nbytes(self) -> int:
        """Bytes of the index's arrays (vectors, item indices, centroids, offsets)."""
        arrays = (self.centroids, self.half_norms, self.offsets, self.vectors, self.items)
        return int(sum(np.prod(v.shape) * v.dtype.size for v in arrays))

    def candidates(self, queries, nprobe):
        """Catalogue indices ``[B, C]`` (-1 padded) in the `nprobe` cells nearest each query."""
        nprobe = tf.clip_by_value(tf.cast(nprobe, tf.int32), 1, self.nlist)
        cell_scores = tf.matmul(queries, self.centroids, transpose_b=True) - self.half_norms
        _, probe = tf.math.top_k(cell_scores, k=nprobe)
        starts = tf.gather(self.offsets, probe)
        ends = tf.gather(self.offsets, probe + 1)
        ranges = tf.ragged.range(tf.reshape(starts, [-1]), tf.reshape(ends, [-1]))
        per_query = tf.RaggedTensor.from_row_lengths(
            ranges.flat_values, tf.reduce_sum(ends - starts, axis=1), validate=False
        )
        return per_query.to_tensor(default_value=-1)

    def search(self, queries, k, nprobe=None, exclude=None):
        """``(scores [B, k], items [B, k])``: approximate top-k catalogue indices per query.

        `exclude` is an optional ``[B, S]`` int64 matrix of catalogue indices to leave out
        (-1 padded). Missing results are item -1, score -inf. With ``nprobe = nlist`` the
        result is exact. Up to 8 queries are scored together (one ``[B, C, d]`` gather);
        larger batches one query at a time (`tf.map_fn`), so memory stays ``C * d`` per
        query instead of growing with the batch's largest candidate set.
        """
        queries = tf.convert_to_tensor(queries, tf.float32)
        k = check_k(k)
        nprobe = self.default_nprobe if nprobe is None else nprobe
        batch = tf.shape(queries)[0]
        if exclude is None:
            exclude = tf.fill([batch, 1], tf.constant(-1, tf.int64))
        exclude = tf.cast(exclude, tf.int64)

        def one(row):
            scores, items = self._search_rows(row[0][None], k, nprobe, row[1][None])
            return scores[0], items[0]

        def one_by_one():
            spec = (tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int64))
            return tf.map_fn(one, (queries, exclude), fn_output_signature=spec)

        return tf.cond(
            batch <= _PADDED_BATCH,
            lambda: self._search_rows(queries, k, nprobe, exclude),
            one_by_one,
        )

    def _search_rows(self, queries, k, nprobe, exclude):
        """The search of a few queries at once: gather every candidate vector, score, top-k."""
        positions = self.candidates(queries, nprobe)
        valid = positions >= 0
        safe = tf.maximum(positions, 0)
        vectors = tf.gather(self.vectors, safe)
        scores = tf.linalg.matvec(vectors, queries)
        items = tf.where(valid, tf.gather(self.items, safe), tf.constant(-1, tf.int64))
        invalid = ~valid | exclusion_mask(items, exclude)
        scores = tf.where(invalid, float("-inf"), scores)
        return padded_top_k(scores, items, k)

    @signature_function
    def serve(self, queries, k, nprobe):
        """Signature function: ``scores``, ``indices`` (and ``ids``) of the top k."""
        scores, items = self.search(queries, k, nprobe)
        return search_outputs(scores, items, self.ids)

    def signatures(self) -> dict:
        """``serving_default``: queries ``[B, d]`` float32, k and nprobe int32 scalars."""
        return {
            "serving_default": self.serve.get_concrete_function(
                tf.TensorSpec([None, self.dim], tf.float32, name="queries"),
                tf.TensorSpec([], tf.int32, name="k"),
                tf.TensorSpec([], tf.int32, name="nprobe"),
            )
        }

    def save(self, path) -> Path:
        """Writes a SavedModel (stock ops only) atomically; returns its directory."""
        return save_module(self, path, self.signatures())

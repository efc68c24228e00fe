"""FAISS indexes for offline batch retrieval over large catalogues, with atomic save/load.

Exists for jobs that run outside TF Serving: precomputing candidates for every user
nightly, evaluating retrieval on millions of items, or deduplicating embeddings. FAISS's
IVF-Flat and HNSW indexes are faster to build and query than the in-graph `IVFIndex` on CPU,
but they cannot live inside a SavedModel. ``faiss-cpu`` is an optional dependency
(``pip install tfrec[faiss]``); it is imported only when an index is built or loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfrec.retrieval.brute_force import check_ids, check_vectors, staged_directory

KINDS = ("ivf_flat", "hnsw", "flat")
_INDEX_FILE = "index.faiss"
_IDS_FILE = "ids.npy"
_META_FILE = "meta.json"


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "FaissIndex needs the faiss-cpu package. Fix: pip install 'tfrec[faiss]' (or "
            "faiss-cpu), or use tfrec.retrieval.IVFIndex, which needs only TensorFlow."
        ) from error
    return faiss


class FaissIndex:
    """A FAISS inner-product index (IVF-Flat, HNSW or exact) plus the ids of its vectors.

    Build one with `FaissIndex.build`, query it with `search`, persist it with `save` and
    `FaissIndex.load`. Scores are inner products (cosines for unit-norm vectors).

    Args:
      index: A built `faiss.Index` over inner product.
      ids: Optional ``[N]`` ids; `search` returns them instead of positions when given.
      kind: "ivf_flat", "hnsw" or "flat" (recorded for save/load).

    Example:
      >>> index = FaissIndex.build(movie_vectors, ids=movie_ids, kind="hnsw")
      >>> scores, ids = index.search(user_vectors, k=100)
      >>> index.save("indexes/movies"); FaissIndex.load("indexes/movies")
    """

    def __init__(self, index, ids=None, kind="flat"):
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
        self.index = index
        self.kind = kind
        self.ids = check_ids(ids, index.ntotal)

    @classmethod
    def build(
        cls,
        vectors,
        ids=None,
        kind="ivf_flat",
        nlist=None,
        nprobe=16,
        hnsw_m=32,
        ef_construction=80,
        ef_search=64,
        seed=0,
    ) -> FaissIndex:
        """Trains (IVF: k-means with `nlist` cells) and fills an index with `vectors`.

        Args:
          vectors: ``[N, d]`` float32 vectors.
          ids: Optional ``[N]`` ids returned by `search`.
          kind: "ivf_flat" (k-means cells, exact scores inside probed cells), "hnsw" (graph
            search) or "flat" (exact).
          nlist: IVF cells, default about ``4 * sqrt(N)``.
          nprobe: IVF cells scanned per query by default.
          hnsw_m: HNSW neighbours per node (memory and recall grow with it).
          ef_construction: HNSW build-time beam width.
          ef_search: HNSW query-time beam width by default.
          seed: Seed of the k-means initialisation.
        """
        faiss = _faiss()
        vectors = np.ascontiguousarray(check_vectors(vectors))
        n, dim = vectors.shape
        if kind == "ivf_flat":
            nlist = min(int(nlist or max(1, round(4 * np.sqrt(n)))), n)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.cp.min_points_per_centroid = 1
            index.train(vectors)
            index.nprobe = min(int(nprobe), nlist)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = int(ef_search)
        elif kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
        index.add(vectors)  # faiss's Python wrapper keeps the IVF quantizer alive
        return cls(index, ids, kind)

    @property
    def dim(self) -> int:
        """Vector size d."""
        return int(self.index.d)

    def search(self, queries, k, nprobe=None, ef_search=None):
        """``(scores [B, k], ids or positions [B, k])``; missing results have position -1.

        `nprobe` (IVF) and `ef_search` (HNSW) override the index's defaults for this call.
        """
        queries = np.ascontiguousarray(check_vectors(queries, "queries"))
        if queries.shape[1] != self.dim:
            raise ValueError(
                f"`queries` must have {self.dim} columns like the index. Received: "
                f"queries.shape={queries.shape}"
            )
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
        if nprobe is not None and self.kind == "ivf_flat":
            self.index.nprobe = int(nprobe)
        if ef_search is not None and self.kind == "hnsw":
            self.index.hnsw.efSearch = int(ef_search)
        scores, positions = self.index.search(queries, int(k))
        if self.ids is None:
            return scores, positions
        found = self.ids[np.maximum(positions, 0)]
        return scores, np.where(positions >= 0, found, np.zeros((), found.dtype))

    def save(self, path) -> Path:
        """Writes the index, ids and settings to directory `path` atomically."""
        faiss = _faiss()
        with staged_directory(path) as staging:
            faiss.write_index(self.index, str(staging / _INDEX_FILE))
            if self.ids is not None:
                np.save(staging / _IDS_FILE, self.ids, allow_pickle=False)
            meta = {"kind": self.kind, "ntotal": int(self.index.ntotal), "dim": self.dim}
            (staging / _META_FILE).write_text(json.dumps(meta))
        return Path(path)

    @classmethod
    def load(cls, path) -> FaissIndex:
        """Reads an index written by `save`."""
        faiss = _faiss()
        path = Path(path)
        if not (path / _META_FILE).exists():
            raise FileNotFoundError(
                f"No FAISS index at {path} (missing {_META_FILE}). Fix: pass a directory "
                "written by FaissIndex.save."
            )
        meta = json.loads((path / _META_FILE).read_text())
        index = faiss.read_index(str(path / _INDEX_FILE))
        ids_path = path / _IDS_FILE
        ids = np.load(ids_path, allow_pickle=False) if ids_path.exists() else None
        return cls(index, ids, meta["kind"])

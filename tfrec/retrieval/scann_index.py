"""ScaNN indexes for offline batch retrieval over large catalogues, with atomic save/load.

Exists beside `FaissIndex` because ScaNN's recipe (a k-means tree, then scoring with
anisotropic 4-bit product quantization, then exact rescoring of the best few hundred) is
often the fastest CPU index at high recall for inner-product search, the metric two-tower
models use. Like FAISS it cannot live inside a SavedModel here: ScaNN's TensorFlow ops are
built for another TensorFlow release, so only its numpy API is used, for offline jobs
(nightly candidates, evaluation at 10^6 items). ``scann`` is an optional dependency
(``pip install 'tfrec[scann]'``), imported only when an index is built or loaded.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np

from tfrec.retrieval.brute_force import check_ids, check_vectors, staged_directory

METRICS = ("dot", "cosine")
_SEARCHER_DIR = "searcher"
_IDS_FILE = "ids.npy"
_META_FILE = "meta.json"
_CHUNK = 64  # queries per task of ScaNN's batched-search thread pool
_EXACT_BELOW = 256  # smaller catalogues are scored exactly
_pybind = None


def _scann_spec():
    """The installed scann package's spec, even when tfrec blocked it; None if not installed.

    A bare ``scann`` directory on the path (a namespace package, no ``__init__.py``) is not
    ScaNN.
    """
    spec = importlib.machinery.PathFinder.find_spec("scann")
    return spec if spec is not None and spec.origin is not None else None


def _scann():
    """ScaNN's numpy API (``scann.scann_ops_pybind``) without its TensorFlow custom ops.

    ``scann/__init__.py`` also loads ScaNN's TensorFlow op library, which is built against
    another TensorFlow release and fails to load next to the installed one (an undefined
    absl symbol; `tfrec._scann_guard` then marks ``scann`` unimportable so TFRS still
    imports). The numpy API does not need those ops, so the package is registered without
    running its ``__init__`` just long enough to import the pybind module.
    """
    global _pybind
    if _pybind is not None:
        return _pybind
    previous = sys.modules.get("scann")
    if previous is not None and hasattr(previous, "scann_ops_pybind"):  # ScaNN loaded fully
        _pybind = previous.scann_ops_pybind
        return _pybind
    spec = _scann_spec()
    if spec is None:
        raise ImportError(
            "ScannIndex needs the scann package. Fix: pip install 'tfrec[scann]' (or scann), "
            "or use tfrec.retrieval.FaissIndex or IVFIndex."
        )
    present = "scann" in sys.modules
    sys.modules["scann"] = importlib.util.module_from_spec(spec)
    try:
        _pybind = importlib.import_module("scann.scann_ops.py.scann_ops_pybind")
    except ImportError as error:
        raise ImportError(
            f"ScaNN is installed at {spec.origin} but its numpy API does not import. Fix: "
            "pip install --force-reinstall 'tfrec[scann]'."
        ) from error
    finally:  # leave `import scann` as it was (blocked, absent or loading)
        if present:
            sys.modules["scann"] = previous
        else:
            del sys.modules["scann"]
    return _pybind


def _positive(value, name: str, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"`{name}` must be at most {upper}. Received: {name}={value!r}")
    return int(value)


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class ScannIndex:
    """A ScaNN tree + asymmetric-hashing + reorder index plus the ids of its vectors.

    Build one with `ScannIndex.build`, query it with `search`, persist it with `save` and
    `ScannIndex.load`. Scores are inner products ("dot") or cosines ("cosine": items and
    queries are L2-normalised first).

    Args:
      searcher: A built ``scann_ops_pybind.ScannSearcher`` over dot-product distance.
      ids: Optional ``[N]`` ids; `search` returns them instead of positions when given.
      metric: "dot" or "cosine" (decides whether queries are normalised).
      dim: Vector size d.
      num_leaves_to_search: Tree leaves scanned per query by default.
      reorder: Candidates rescored exactly per query by default (None: ``max(100, 10 k)``).
      settings: Build settings, kept for `save` and display.

    Example:
      >>> index = ScannIndex.build(movie_vectors, ids=movie_ids, metric="dot")
      >>> scores, ids = index.search(user_vectors, k=100)
      >>> index.save("indexes/movies"); ScannIndex.load("indexes/movies")
    """

    def __init__(
        self,
        searcher,
        ids=None,
        metric="dot",
        dim=None,
        num_leaves_to_search=1,
        reorder=None,
        settings=None,
    ):
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}. Received: metric={metric!r}")
        self.searcher = searcher
        self.metric = metric
        self.size = int(searcher.size())
        self.dim = _positive(dim, "dim")
        self.num_leaves_to_search = _positive(num_leaves_to_search, "num_leaves_to_search")
        self.reorder = None if reorder is None else _positive(reorder, "reorder")
        self.settings = dict(settings or {})
        if self.settings.get("threads"):
            searcher.set_num_threads(int(self.settings["threads"]))
        self.ids = check_ids(ids, self.size)

    @classmethod
    def build(
        cls,
        vectors,
        ids=None,
        metric="dot",
        num_leaves=None,
        num_leaves_to_search=None,
        training_sample_size=None,
        dimensions_per_block=1,
        anisotropic_quantization_threshold=0.2,
        reorder=None,
        threads=0,
    ) -> ScannIndex:
        """Trains the tree and the quantizer on `vectors` and indexes them.

        Catalogues under 256 vectors are scored exactly (ScaNN brute force): a tree and a
        quantizer cannot be trained on so few, and one scan of them is already instant.

        Args:
          vectors: ``[N, d]`` float32 item vectors.
          ids: Optional ``[N]`` ids returned by `search`.
          metric: "dot" (inner product) or "cosine".
          num_leaves: k-means tree leaves, default ``round(sqrt(N))`` (~sqrt(N) items each).
          num_leaves_to_search: Leaves scanned per query by default, default
            ``ceil(num_leaves / 10)``.
          training_sample_size: Vectors sampled to train the tree and the quantizer,
            default ``min(N, 100_000)``.
          dimensions_per_block: Dimensions per 4-bit asymmetric-hashing code. 1 (d / 2 bytes
            per item) keeps recall@10 near 0.99 on 64-d vectors at 10^6 items where ScaNN's
            usual 2 stalls near 0.93 even with 800 candidates rescored.
          anisotropic_quantization_threshold: ScaNN's score-aware quantization threshold
            (0.2 suits unit-norm vectors; NaN turns it off).
          reorder: Candidates rescored exactly per query by default; None means
            ``max(100, 10 * k)`` at search time.
          threads: Threads for training and batched search (0: ScaNN's default, all cores).
        """
        pybind = _scann()
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}. Received: metric={metric!r}")
        vectors = np.ascontiguousarray(check_vectors(vectors))
        if metric == "cosine":
            vectors = _normalized(vectors)
        n, dim = vectors.shape
        if num_leaves is None:
            num_leaves = max(1, round(math.sqrt(n)))
        num_leaves = _positive(num_leaves, "num_leaves", n)
        if num_leaves_to_search is None:
            num_leaves_to_search = math.ceil(num_leaves / 10)
        to_search = _positive(num_leaves_to_search, "num_leaves_to_search", num_leaves)
        if training_sample_size is None:
            training_sample_size = 100_000
        sample = min(_positive(training_sample_size, "training_sample_size"), n)
        block = _positive(dimensions_per_block, "dimensions_per_block", dim)
        reorder = None if reorder is None else _positive(reorder, "reorder")
        if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 0:
            raise ValueError(f"`threads` must be an integer >= 0. Received: threads={threads!r}")
        threshold = float(anisotropic_quantization_threshold)
        builder = pybind.builder(vectors, 10, "dot_product").set_n_training_threads(int(threads))
        if n < _EXACT_BELOW:
            builder = builder.score_brute_force()
            settings = {"exact": True}
        else:
            builder = builder.tree(
                num_leaves=num_leaves,
                num_leaves_to_search=to_search,
                training_sample_size=sample,
                min_partition_size=max(1, min(50, n // (2 * num_leaves))),
                spherical=metric == "cosine",
            )
            builder = builder.score_ah(
                block, anisotropic_quantization_threshold=threshold, training_sample_size=sample
            ).reorder(reorder or 100)
            settings = {
                "num_leaves": num_leaves,
                "training_sample_size": sample,
                "dimensions_per_block": block,
                "anisotropic_quantization_threshold": threshold,
            }
        settings["threads"] = int(threads)
        searcher = builder.build()
        return cls(searcher, ids, metric, dim, to_search, reorder, settings)

    @property
    def num_leaves(self) -> int | None:
        """Leaves of the tree, or None for a small catalogue scored exactly."""
        return self.settings.get("num_leaves")

    def __repr__(self) -> str:
        if self.num_leaves is None:
            search = "exact (no tree)"
        else:
            search = (
                f"num_leaves={self.num_leaves}, num_leaves_to_search={self.num_leaves_to_search}"
            )
        return (
            f"ScannIndex(size={self.size}, dim={self.dim}, metric={self.metric!r}, {search}, "
            f"reorder={self.reorder})"
        )

    def search(self, queries, k, num_leaves_to_search=None, reorder=None):
        """``(scores [B, k], ids or positions [B, k])``; missing results have position -1.

        One query runs ScaNN's single-query path, more run its batched path. Missing
        results (k above the size, or too few candidates in the scanned leaves) come back as
        position -1 (or the ids' zero value) with score -inf. `num_leaves_to_search` and
        `reorder` override the index's defaults for this call.
        """
        queries = np.ascontiguousarray(check_vectors(queries, "queries"))
        if queries.shape[1] != self.dim:
            raise ValueError(
                f"`queries` must have {self.dim} columns like the index. Received: "
                f"queries.shape={queries.shape}"
            )
        k = _positive(k, "k")
        leaves = self.num_leaves_to_search
        if num_leaves_to_search is not None:
            leaves = _positive(num_leaves_to_search, "num_leaves_to_search", self.num_leaves)
        reorder = self.reorder if reorder is None else _positive(reorder, "reorder")
        candidates = max(k, reorder or max(100, 10 * k))
        if self.metric == "cosine":
            queries = _normalized(queries)
        if len(queries) == 1:
            found, scores = self.searcher.search(queries[0], k, candidates, leaves)
            found, scores = found[None], scores[None]
        else:  # chunks of _CHUNK queries on ScaNN's thread pool
            found, scores = self.searcher.search_batched_parallel(
                queries, k, candidates, leaves, batch_size=_CHUNK
            )
        positions = np.full((len(queries), k), -1, np.int64)
        top = np.full((len(queries), k), -np.inf, np.float32)
        width = found.shape[1]
        valid = ~np.isnan(scores)
        positions[:, :width] = np.where(valid, found.astype(np.int64), -1)
        top[:, :width] = np.where(valid, scores, -np.inf)
        if self.ids is None:
            return top, positions
        ids = self.ids[np.maximum(positions, 0)]
        return top, np.where(positions >= 0, ids, np.zeros((), ids.dtype))

    def save(self, path) -> Path:
        """Writes the searcher, ids and settings to directory `path` atomically."""
        with staged_directory(path) as staging:
            (staging / _SEARCHER_DIR).mkdir()
            self.searcher.serialize(str(staging / _SEARCHER_DIR), relative_path=True)
            if self.ids is not None:
                np.save(staging / _IDS_FILE, self.ids, allow_pickle=False)
            meta = {
                "metric": self.metric,
                "size": self.size,
                "dim": self.dim,
                "num_leaves_to_search": self.num_leaves_to_search,
                "reorder": self.reorder,
                "settings": self.settings,
            }
            (staging / _META_FILE).write_text(json.dumps(meta))
        return Path(path)

    @classmethod
    def load(cls, path) -> ScannIndex:
        """Reads an index written by `save`."""
        path = Path(path)
        if not (path / _META_FILE).exists():
            raise FileNotFoundError(
                f"No ScaNN index at {path} (missing {_META_FILE}). Fix: pass a directory "
                "written by ScannIndex.save."
            )
        pybind = _scann()
        meta = json.loads((path / _META_FILE).read_text())
        searcher = pybind.load_searcher(str(path / _SEARCHER_DIR))
        ids_path = path / _IDS_FILE
        ids = np.load(ids_path, allow_pickle=False) if ids_path.exists() else None
        return cls(
            searcher,
            ids,
            meta["metric"],
            meta["dim"],
            meta["num_leaves_to_search"],
            meta["reorder"],
            meta["settings"],
        )

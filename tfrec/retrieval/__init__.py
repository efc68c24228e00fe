"""Retrieval: nearest-neighbour indexes over two-tower vectors, and how to train and judge them.

- `BruteForce`: exact in-graph top-k (the reference; fine up to ~10^5 items).
- `IVFIndex`: approximate in-graph top-k from stock TF ops (k-means cells, probe a few),
  exportable to TF Serving with `k` and `nprobe` chosen per request.
- `FaissIndex`: FAISS IVF-Flat / HNSW for offline batch retrieval (optional dependency).
- `ScannIndex`: ScaNN tree + asymmetric hashing + exact reorder, dot product or cosine, for
  the same offline jobs (optional dependency, ``pip install 'tfrec[scann]'``).
- `clustered_embeddings`, `synthetic_catalogue`: synthetic data at any scale.

Retrieval models train and are judged like every tfrec model (`tfrec.training.fit`,
`tfrec.evaluation.evaluate_model`, e.g. full-corpus ``ks=RETRIEVAL_KS``); the in-batch softmax
and its log-Q frequency estimator are tasks (`tfrec.tasks`).
"""

from tfrec.retrieval.brute_force import BruteForce
from tfrec.retrieval.faiss_index import FaissIndex
from tfrec.retrieval.ivf import IVFIndex, kmeans
from tfrec.retrieval.scann_index import ScannIndex
from tfrec.retrieval.synthetic import clustered_embeddings, synthetic_catalogue
from tfrec.retrieval.topk import exclusion_mask, padded_top_k

RETRIEVAL_KS = (10, 50, 100)
"""Cut-offs retrieval is judged at: is the held-out item among the candidates a ranker sees?"""

__all__ = [
    "RETRIEVAL_KS",
    "BruteForce",
    "FaissIndex",
    "IVFIndex",
    "ScannIndex",
    "clustered_embeddings",
    "exclusion_mask",
    "kmeans",
    "padded_top_k",
    "synthetic_catalogue",
]

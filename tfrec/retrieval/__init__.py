"""Retrieval: nearest-neighbour indexes over two-tower vectors, and how to train and judge them.

- `BruteForce`: exact in-graph top-k (the reference; fine up to ~10^5 items).
- `IVFIndex`: approximate in-graph top-k from stock TF ops (k-means cells, probe a few),
  exportable to TF Serving with `k` and `nprobe` chosen per request.
- `FaissIndex`: FAISS IVF-Flat / HNSW for offline batch retrieval (optional dependency).
- `ScannIndex`: ScaNN tree + asymmetric hashing + exact reorder, dot product or cosine, for
  the same offline jobs (optional dependency, ``pip install 'tfrec[scann]'``).
- `FrequencyEstimator`: streaming item frequencies for the log-Q correction.
- `positives_dataset`, `evaluate_retrieval`: two-tower training batches and full-corpus
  leave-one-out recall / NDCG.
- `clustered_embeddings`, `synthetic_catalogue`: synthetic data at any scale.
"""

from tfrec.retrieval.brute_force import BruteForce
from tfrec.retrieval.faiss_index import FaissIndex
from tfrec.retrieval.frequency import FrequencyEstimator
from tfrec.retrieval.ivf import IVFIndex, kmeans
from tfrec.retrieval.scann_index import ScannIndex
from tfrec.retrieval.synthetic import clustered_embeddings, synthetic_catalogue
from tfrec.retrieval.topk import exclusion_mask, padded_top_k
from tfrec.retrieval.training import (
    RETRIEVAL_KS,
    catalogue_vectors,
    evaluate_retrieval,
    positives_dataset,
    retrieval_score_fn,
)

__all__ = [
    "RETRIEVAL_KS",
    "BruteForce",
    "FaissIndex",
    "FrequencyEstimator",
    "IVFIndex",
    "ScannIndex",
    "catalogue_vectors",
    "clustered_embeddings",
    "evaluate_retrieval",
    "exclusion_mask",
    "kmeans",
    "padded_top_k",
    "positives_dataset",
    "retrieval_score_fn",
    "synthetic_catalogue",
]

"""An installed ScaNN whose TensorFlow ops cannot load must not break TFRS (or tfrec models)."""

import tfrec  # noqa: F401  # isort: skip
import sys

import pytest

from tfrec import _scann_guard
from tfrec.retrieval import ScannIndex, clustered_embeddings, scann_index

if scann_index._scann_spec() is None:
    pytest.skip("scann is not installed: pip install 'tfrec[scann]'", allow_module_level=True)


def test_tensorflow_recommenders_imports_next_to_scann():
    # TFRS probes `from scann import scann_ops` and catches only ImportError. Importing it
    # here at all shows the probe did not raise anything else.
    import tensorflow_recommenders as tfrs

    if tfrs.layers.factorized_top_k._HAVE_SCANN:  # a ScaNN built for this TensorFlow
        assert _scann_guard.SCANN_TF_OPS_ERROR is None
        return
    assert sys.modules["scann"] is None and _scann_guard.SCANN_TF_OPS_ERROR
    with pytest.raises(ImportError):
        import scann  # noqa: F401


def test_scann_index_loads_numpy_api_and_leaves_the_block_in_place(monkeypatch):
    monkeypatch.setattr(scann_index, "_pybind", None)  # force a fresh load
    before = sys.modules.get("scann", "absent")
    items, queries = clustered_embeddings(300, 8, num_queries=4, seed=0)
    index = ScannIndex.build(items)
    # Every leaf searched: the answer does not hang on which leaves the k-means tree (trained
    # anew each build, not bit-reproducible) puts each query's best item in.
    _, found = index.search(queries, 5, num_leaves_to_search=index.num_leaves)
    assert sys.modules.get("scann", "absent") is before
    best = (queries @ items.T).argmax(axis=1)
    assert (found[:, 0] == best).all()

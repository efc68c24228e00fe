"""FaissIndex: recall against exact search and the save/load round trip."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest

from tfrec.retrieval import FaissIndex, clustered_embeddings

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data():
    items, queries = clustered_embeddings(2000, 16, num_clusters=20, num_queries=30, seed=2)
    return items, queries, np.array([f"movie-{i}" for i in range(len(items))])


@pytest.mark.parametrize("kind", ["ivf_flat", "hnsw"])
def test_recall_and_save_load_round_trip(data, kind, tmp_path):
    items, queries, ids = data
    _, exact = FaissIndex.build(items, ids, kind="flat").search(queries, 10)
    index = FaissIndex.build(items, ids, kind=kind, nlist=16, nprobe=4)
    scores, found = index.search(queries, 10)
    hits = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert hits >= 0.9
    assert found.dtype.kind == "U" and found[0, 0].startswith("movie-")
    path = index.save(tmp_path / "index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    loaded = FaissIndex.load(path)
    assert loaded.kind == kind
    again_scores, again = loaded.search(queries, 10)
    np.testing.assert_array_equal(again, found)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-6)


def test_exact_scores_are_inner_products(data):
    items, queries, _ = data
    scores, positions = FaissIndex.build(items, kind="flat").search(queries[:2], 3)
    expected = np.sort(queries[:2] @ items.T, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert positions.dtype == np.int64


def test_errors_name_the_problem(data, tmp_path):
    items, queries, _ = data
    with pytest.raises(ValueError, match="kind"):
        FaissIndex.build(items, kind="lsh")
    with pytest.raises(ValueError, match="columns"):
        FaissIndex.build(items, kind="flat").search(queries[:, :4], 3)
    with pytest.raises(FileNotFoundError, match="FaissIndex.save"):
        FaissIndex.load(tmp_path / "missing")

"""ScannIndex: recall against exact search, exact scores, ids, save/load and clear errors."""

import tfrec  # noqa: F401  # isort: skip

import numpy as np
import pytest

from tfrec.retrieval import ScannIndex, clustered_embeddings
from tfrec.retrieval import scann_index as scann_module

# Not pytest.importorskip: `import scann` itself fails next to TensorFlow 2.21 (its TF ops
# library does not load, and tfrec then blocks it); ScannIndex imports only the numpy API.
if scann_module._scann_spec() is None:
    pytest.skip("scann is not installed: pip install 'tfrec[scann]'", allow_module_level=True)

K = 10


def exact_top(queries, items, k=K):
    scores = queries @ items.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k], scores


def recall(found, exact):
    return float(np.mean((found[:, :, None] == exact[:, None, :]).any(axis=1).sum(axis=1) / K))


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    # Raw (not normalised) mixture vectors: norms vary, so dot and cosine rankings differ.
    items, queries = clustered_embeddings(
        3000, 16, num_clusters=20, num_queries=64, normalize=False, seed=2
    )
    ids = np.array([f"movie-{i}" for i in range(len(items))], dtype=object)
    return items, queries, ids


@pytest.fixture(scope="module")
def dot_index(data):
    items, _, ids = data
    return ScannIndex.build(items, ids)


# Recall floor 0.9: with the defaults (55 leaves, 6 scanned, 4-bit codes per dimension, 100
# candidates rescored) these 64 queries reach 0.97 (dot) and 0.99 (cosine). Scanning 1 leaf
# gives 0.53-0.64 and ranking by the other metric 0.32 (random: 10 / 3000), so 0.9 catches a
# lost setting or a mixed-up metric with room for ScaNN's k-means sampling to vary.
@pytest.mark.parametrize("metric", ["dot", "cosine"])
def test_recall_and_exact_scores_against_brute_force(data, metric):
    items, queries, _ = data
    index = ScannIndex.build(items, metric=metric)
    reference_items = unit(items) if metric == "cosine" else items
    reference_queries = unit(queries) if metric == "cosine" else queries
    exact, all_scores = exact_top(reference_queries, reference_items)
    scores, found = index.search(queries, K)
    assert found.shape == scores.shape == (len(queries), K) and found.dtype == np.int64
    assert recall(found, exact) >= 0.9
    # The reorder step rescores exactly: every score is the true dot product / cosine.
    np.testing.assert_allclose(
        scores, np.take_along_axis(all_scores, found, axis=1), rtol=1e-4, atol=1e-5
    )
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    # Scanning every leaf and rescoring many candidates is (nearly) exact search.
    # Defaults scale with N: round(sqrt(3000)) = 55 leaves, ceil(55 / 10) = 6 searched.
    assert (index.num_leaves, index.num_leaves_to_search) == (55, 6)
    _, everything = index.search(queries, K, num_leaves_to_search=55, reorder=500)
    assert recall(everything, exact) >= 0.99


def test_metrics_rank_differently(data):
    items, queries, _ = data
    _, by_dot = exact_top(queries, items)
    _, by_cosine = exact_top(unit(queries), unit(items))
    assert recall(by_dot, by_cosine) < 0.5  # so the cosine test above is not the dot test


def test_ids_round_trip_and_single_query_matches_batch(data, dot_index):
    items, queries, ids = data
    scores, found = dot_index.search(queries, K)
    assert found.dtype.kind == "U" and found[0, 0].startswith("movie-")
    positions = np.char.replace(found, "movie-", "").astype(np.int64)
    np.testing.assert_allclose(
        scores, np.einsum("bd,bkd->bk", queries, items[positions]), rtol=1e-4, atol=1e-5
    )
    one_scores, one = dot_index.search(queries[3:4], K)
    np.testing.assert_array_equal(one, found[3:4])
    np.testing.assert_allclose(one_scores, scores[3:4], rtol=1e-6)


def test_save_load_gives_identical_results(data, dot_index, tmp_path):
    items, queries, _ = data
    cosine = ScannIndex.build(items, metric="cosine", num_leaves=30, num_leaves_to_search=5)
    for name, index in (("dot", dot_index), ("cosine", cosine)):
        path = index.save(tmp_path / name)
        index.save(path)  # overwriting an index replaces it whole
        loaded = ScannIndex.load(path)
        assert (loaded.metric, loaded.size, loaded.dim) == (index.metric, 3000, 16)
        assert loaded.num_leaves_to_search == index.num_leaves_to_search
        assert loaded.num_leaves == index.num_leaves == (55 if name == "dot" else 30)
        scores, found = index.search(queries, K)
        again_scores, again = loaded.search(queries, K)
        np.testing.assert_array_equal(again, found)
        np.testing.assert_allclose(again_scores, scores, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosine", "dot"]  # no temp dirs


def test_tiny_catalogue_is_exact_and_pads_missing_results(data):
    items, queries, _ = data
    small = items[:40]
    index = ScannIndex.build(small, ids=np.arange(100, 140))
    assert index.num_leaves is None  # under 256 vectors: no tree, exact scores
    scores, found = index.search(queries[:5], 45)
    exact, all_scores = exact_top(queries[:5], small, k=40)
    np.testing.assert_array_equal(found[:, :40], exact + 100)
    np.testing.assert_allclose(scores[:, :40], np.sort(all_scores, axis=1)[:, ::-1], rtol=1e-5)
    assert np.all(found[:, 40:] == 0) and np.all(scores[:, 40:] == -np.inf)
    _, positions = ScannIndex.build(small).search(queries[:2], 45)
    assert np.all(positions[:, 40:] == -1)


def test_errors_name_the_problem(data, dot_index, tmp_path):
    items, queries, _ = data
    with pytest.raises(ValueError, match="metric='l2'"):
        ScannIndex.build(items, metric="l2")
    with pytest.raises(ValueError, match="columns.*queries.shape=\\(64, 4\\)"):
        dot_index.search(queries[:, :4], K)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=f"k={k!r}"):
            dot_index.search(queries, k)
    with pytest.raises(ValueError, match="num_leaves=5000"):
        ScannIndex.build(items, num_leaves=5000)
    with pytest.raises(ValueError, match="at most 55.*num_leaves_to_search=56"):
        dot_index.search(queries, K, num_leaves_to_search=56)
    with pytest.raises(ValueError, match="ids.shape=\\(3,\\)"):
        ScannIndex.build(items, ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="NaN"):
        dot_index.search(np.full((1, 16), np.nan), K)
    with pytest.raises(FileNotFoundError, match="ScannIndex.save"):
        ScannIndex.load(tmp_path / "missing")


def test_missing_package_names_the_extra(data, monkeypatch):
    monkeypatch.setattr(scann_module, "_pybind", None)
    monkeypatch.setattr(scann_module, "_scann_spec", lambda: None)
    with pytest.raises(ImportError, match=r"pip install 'tfrec\[scann\]'"):
        ScannIndex.build(data[0])

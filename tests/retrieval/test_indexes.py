"""In-graph indexes: exact search by hand, IVF against exact search, exclusion, SavedModel."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.retrieval import BruteForce, IVFIndex, clustered_embeddings, kmeans
from tfrec.retrieval.topk import exclusion_mask, padded_top_k

INF = float("inf")


def recall(found, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)])


@pytest.fixture(scope="module")
def catalogue():
    items, queries = clustered_embeddings(3000, 16, num_clusters=30, num_queries=40, seed=5)
    return items, queries


def test_exclusion_mask_is_membership_per_row():
    candidates = tf.constant([[4, 2, -1, 7], [1, 2, 3, 0]], tf.int64)
    exclude = tf.constant([[7, 4, -1], [-1, -1, -1]], tf.int64)
    np.testing.assert_array_equal(
        exclusion_mask(candidates, exclude).numpy(),
        [[True, False, False, True], [False, False, False, False]],
    )


def test_padded_top_k_pads_missing_results():
    scores = tf.constant([[0.1, 0.9, -INF], [0.5, 0.2, 0.3]])
    items = tf.constant([[10, 11, 12], [20, 21, 22]], tf.int64)
    top, found = padded_top_k(scores, items, 4)
    np.testing.assert_array_equal(found.numpy(), [[11, 10, -1, -1], [20, 22, 21, -1]])
    np.testing.assert_allclose(top.numpy(), [[0.9, 0.1, -INF, -INF], [0.5, 0.3, 0.2, -INF]])


def test_brute_force_by_hand():
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    index = BruteForce(vectors)
    scores, items = index.search(tf.constant([[1.0, 0.0], [0.0, 1.0]]), 3)
    np.testing.assert_array_equal(items.numpy(), [[0, 2, 1], [1, 2, 0]])
    np.testing.assert_allclose(scores.numpy(), [[1, 0.6, 0], [1, 0.8, 0]], atol=1e-7)
    _, items = index.search(
        tf.constant([[1.0, 0.0], [0.0, 1.0]]), 5, exclude=tf.constant([[0, -1], [2, 1]])
    )
    np.testing.assert_array_equal(items.numpy(), [[2, 1, 3, -1, -1], [0, 3, -1, -1, -1]])


def test_bad_vectors_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="vectors"):
        BruteForce(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        IVFIndex(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="nlist"):
        IVFIndex(np.ones((4, 2)), nlist=0)
    with pytest.raises(ValueError, match="ids"):
        BruteForce(np.ones((4, 2)), ids=["a"])


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 0], [0, 10], [-10, -10]], np.float32)
    points = np.repeat(centres, 50, axis=0) + 0.1 * rng.standard_normal((150, 2))
    found = kmeans(points.astype(np.float32), 3, iterations=10, seed=1)
    order = np.lexsort(found.T[::-1])
    np.testing.assert_allclose(found[order], centres[np.lexsort(centres.T[::-1])], atol=0.1)


def test_ivf_layout_is_a_permutation_grouped_by_cell(catalogue):
    items, _ = catalogue
    index = IVFIndex(items, nlist=20, seed=0)
    offsets = index.offsets.numpy()
    assert offsets[0] == 0 and offsets[-1] == len(items) and (np.diff(offsets) >= 0).all()
    np.testing.assert_array_equal(np.sort(index.items.numpy()), np.arange(len(items)))
    np.testing.assert_array_equal(index.vectors.numpy(), items[index.items.numpy()])
    assert index.nbytes >= items.nbytes


def test_ivf_with_every_cell_probed_is_exact(catalogue):
    items, queries = catalogue
    index = IVFIndex(items, nlist=20, seed=0)
    exact_scores, exact_items = BruteForce(items).search(queries, 10)
    scores, found = index.search(queries, 10, nprobe=20)
    np.testing.assert_array_equal(found.numpy(), exact_items.numpy())
    np.testing.assert_allclose(scores.numpy(), exact_scores.numpy(), rtol=1e-5)


def test_ivf_recall_grows_with_nprobe(catalogue):
    items, queries = catalogue
    index = IVFIndex(items, nlist=20, seed=0)
    _, exact = BruteForce(items).search(queries, 10)
    recalls = [
        recall(index.search(queries, 10, nprobe=p)[1].numpy(), exact.numpy()) for p in (1, 4)
    ]
    assert recalls[0] < recalls[1]
    assert recalls[1] >= 0.9  # 20% of the cells of clustered data


def test_ivf_excludes_and_pads(catalogue):
    items, queries = catalogue
    index = IVFIndex(items, nlist=20, seed=0)
    _, best = index.search(queries[:2], 3, nprobe=20)
    exclude = tf.concat([best, tf.fill([2, 2], tf.constant(-1, tf.int64))], axis=1)
    _, again = index.search(queries[:2], 3, nprobe=20, exclude=exclude)
    assert not set(again.numpy().ravel()) & set(best.numpy().ravel())
    _, best = index.search(queries[:10], 3, nprobe=20)  # more than 8 queries: one by one
    _, again = index.search(queries[:10], 3, nprobe=20, exclude=best)
    assert not (again.numpy()[:, :, None] == best.numpy()[:, None, :]).any()
    small = IVFIndex(items[:5], nlist=2, seed=0)
    _, found = small.search(queries[:1], 8, nprobe=2)
    assert sorted(found.numpy()[0][:5]) == list(range(5)) and (found.numpy()[0][5:] == -1).all()


def test_ivf_savedmodel_takes_k_and_nprobe_per_request(catalogue, tmp_path):
    items, queries = catalogue
    ids = np.array([f"m{i}" for i in range(len(items))])
    index = IVFIndex(items, ids=ids, nlist=20, seed=0)
    path = index.save(tmp_path / "ivf")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    for k, nprobe in ((5, 2), (12, 20)):
        got = serve(queries=tf.constant(queries), k=tf.constant(k), nprobe=tf.constant(nprobe))
        scores, found = index.search(queries, k, nprobe)
        np.testing.assert_array_equal(got["indices"].numpy(), found.numpy())
        np.testing.assert_allclose(got["scores"].numpy(), scores.numpy(), rtol=1e-6)
        assert got["ids"].numpy()[0, 0].decode() == ids[found.numpy()[0, 0]]


def test_brute_force_savedmodel(catalogue, tmp_path):
    items, queries = catalogue
    index = BruteForce(items[:50])
    serve = tf.saved_model.load(str(index.save(tmp_path / "bf"))).signatures["serving_default"]
    got = serve(queries=tf.constant(queries[:3]), k=tf.constant(60))
    np.testing.assert_array_equal(got["indices"].numpy(), index.search(queries[:3], 60)[1])
    assert (got["indices"].numpy()[:, 50:] == -1).all()

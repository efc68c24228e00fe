"""Baselines on tiny interaction matrices whose answers are worked out by hand."""

import numpy as np
import pytest

from tfrec.baselines import EASE, ItemKNN, Popularity
from tfrec.data import SeenItems
from tfrec.evaluation import full_ranking


def test_popularity_scores_are_training_counts():
    model = Popularity().fit(np.array([0, 1, 2, 0, 1, 2]), np.array([0, 0, 0, 1, 2, 2]), 3, 4)
    scores = model.score_fn(np.array([0, 1]), np.array([[3, 0, 1, 2], [2, 2, 0, 3]]))
    np.testing.assert_array_equal(scores, [[0, 3, 1, 2], [2, 2, 3, 0]])
    # User 2 holds out item 1 (count 1) with item 0 excluded: only item 2 (count 2) is above.
    exclude = SeenItems.from_pairs(np.array([2]), np.array([0]), 3, 4)
    result = full_ranking(model.score_fn, np.array([2]), np.array([1]), 4, exclude, ks=(1, 2))
    assert result["hr@1"] == 0.0 and result["hr@2"] == 1.0 and result["mrr"] == 0.5


# users: 0 {0,1}, 1 {0,1}, 2 {2}, 3 {0}, 4 {2,3}, 5 {1,2}
KNN_USERS = np.array([0, 0, 1, 1, 2, 3, 4, 4, 5, 5])
KNN_ITEMS = np.array([0, 1, 0, 1, 2, 0, 2, 3, 1, 2])


def test_item_knn_cosine_similarity_by_hand():
    # |U_0| = |U_1| = |U_2| = 3, |U_3| = 1; co-counts (0,1) = 2, (1,2) = 1, (2,3) = 1.
    model = ItemKNN(k=10).fit(KNN_USERS, KNN_ITEMS, 6, 4)
    r = 1 / np.sqrt(3)
    expected = np.array([[0, 2 / 3, 0, 0], [2 / 3, 0, 1 / 3, 0], [0, 1 / 3, 0, r], [0, 0, r, 0]])
    np.testing.assert_allclose(model.similarity, expected, rtol=1e-6)
    # User 3 has only item 0: the co-occurring item 1 is the recommendation.
    scores = model.score_all(np.array([3]))[0]
    np.testing.assert_allclose(scores, [0, 2 / 3, 0, 0], rtol=1e-6)
    # Shrink damps: 2 / (3 + 1).
    assert ItemKNN(k=10, shrink=1.0).fit(KNN_USERS, KNN_ITEMS, 6, 4).similarity[
        0, 1
    ] == pytest.approx(0.5)


def test_item_knn_keeps_k_neighbours_per_item():
    model = ItemKNN(k=1).fit(KNN_USERS, KNN_ITEMS, 6, 4)
    r = 1 / np.sqrt(3)
    # Item 1's best neighbour is item 0 (2/3 > 1/3); item 2's is item 3 (1/sqrt(3) > 1/3).
    expected = np.array([[0, 2 / 3, 0, 0], [2 / 3, 0, 0, 0], [0, 0, 0, r], [0, 0, r, 0]])
    np.testing.assert_allclose(model.similarity, expected, rtol=1e-6)
    # User 5 holds {1, 2}: item 0 gets 2/3 (via 1), item 3 gets 1/sqrt(3) (via 2); items 1 and
    # 2 lost each other as neighbours, so they score 0.
    scores = model.score_fn(np.array([5]), np.array([[0, 3, 1, 2]]))
    np.testing.assert_allclose(scores, [[2 / 3, r, 0, 0]], rtol=1e-6)


def test_ease_two_items_by_hand():
    # users: {0,1}, {0}, {1}, {1}: |item 0| = 2, |item 1| = 3, co-count 1. With l2 = 1:
    # G = [[3, 1], [1, 4]], P = [[4, -1], [-1, 3]] / 11, B_01 = 1/3, B_10 = 1/4.
    model = EASE(l2=1.0).fit(np.array([0, 0, 1, 2, 3]), np.array([0, 1, 0, 1, 1]), 4, 2)
    np.testing.assert_allclose(model.weights, [[0, 1 / 3], [1 / 4, 0]], rtol=1e-6)
    np.testing.assert_allclose(
        model.score_fn(np.array([1]), np.array([[1, 0]])), [[1 / 3, 0]], rtol=1e-6
    )


def test_ease_solves_its_constrained_least_squares():
    rng = np.random.default_rng(0)
    matrix = rng.random((30, 6)) < 0.4
    users, items = np.nonzero(matrix)
    model = EASE(l2=2.0).fit(users, items, 30, 6)
    weights = model.weights.astype(np.float64)
    np.testing.assert_array_equal(np.diag(weights), 0.0)
    # Zero gradient of ||X - XB||^2 + l2 ||B||^2 for every free (off-diagonal) entry.
    x = matrix.astype(np.float64)
    gradient = (x.T @ x + 2.0 * np.eye(6)) @ weights - x.T @ x
    off_diagonal = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(gradient[off_diagonal], 0.0, atol=1e-5)


def test_baseline_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        EASE().score_fn(np.array([0]), np.array([[0]]))
    with pytest.raises(ValueError, match="item_index must lie in"):
        Popularity().fit(np.array([0]), np.array([4]), 1, 4)
    with pytest.raises(ValueError, match="same length"):
        ItemKNN().fit(np.array([0, 0]), np.array([1]), 1, 4)
    with pytest.raises(ValueError, match="l2 must be"):
        EASE(l2=0.0)
    with pytest.raises(ValueError, match="k must be"):
        ItemKNN(k=0)
    with pytest.raises(ValueError, match="shrink must be"):
        ItemKNN(shrink=-1.0)
    model = ItemKNN().fit(KNN_USERS, KNN_ITEMS, 6, 4)
    with pytest.raises(ValueError, match="item_index \\[B, C\\]"):
        model.score_fn(np.array([0, 1]), np.array([[0, 1]]))

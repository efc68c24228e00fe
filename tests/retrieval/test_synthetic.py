"""Synthetic retrieval data: shapes, norms and the interaction table's invariants."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest

from tfrec.retrieval import clustered_embeddings, synthetic_catalogue


def test_clustered_embeddings_are_unit_vectors():
    items, queries = clustered_embeddings(500, 8, num_clusters=5, num_queries=7, seed=1)
    assert items.shape == (500, 8) and queries.shape == (7, 8) and items.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    again, _ = clustered_embeddings(500, 8, num_clusters=5, num_queries=7, seed=1)
    np.testing.assert_array_equal(items, again)


def test_catalogue_ratings_are_distinct_per_user_and_in_time_order():
    ml = synthetic_catalogue(num_users=30, num_movies=100, ratings_per_user=12, seed=4)
    ratings = ml.ratings
    assert ml.num_users == 30 and ml.num_movies == 100
    np.testing.assert_array_equal(np.bincount(ratings["user_index"]), np.full(30, 12))
    pairs = ratings["user_index"] * 100 + ratings["movie_index"]
    assert np.unique(pairs).size == pairs.size
    np.testing.assert_array_equal(ml.movie_ids[ratings["movie_index"]], ratings["movie_id"])
    np.testing.assert_array_equal(ml.user_ids[ratings["user_index"]], ratings["user_id"])
    assert (np.diff(ratings["timestamp"]) > 0).all()


def test_catalogue_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="ratings_per_user"):
        synthetic_catalogue(num_users=3, num_movies=10, ratings_per_user=6)

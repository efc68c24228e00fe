"""Unit tests for tfrec.serving.catalogue: the Catalogue an export ranks over, id alignment,
popularity, and the seen-items lookup and known users it builds from a store."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.store import FeatureStore
from tfrec.serving.catalogue import (
    aligned,
    as_strings,
    build_catalogue,
    index_of,
    normalized_popularity,
)


@pytest.fixture(scope="module")
def small_store():
    """Users a, b, c; history for b and x (x has no users row); movies 10, 20, 30, 40."""
    users = {"user_id": np.array(["a", "b", "c"]), "user_gender": np.array([True, False, True])}
    movies = {
        "movie_id": np.array(["10", "20", "30", "40"]),
        "movie_title": np.array(["Ten (1990)", "Twenty (1991)", "Thirty (1992)", "Forty (1993)"]),
    }
    history = {"user_id": np.array(["b", "x"]), "recent_movie_ids": np.array([["", "30"]] * 2)}
    return FeatureStore(users, movies, history)


def test_build_catalogue_seen_mask_known_users_and_popularity_by_hand(small_store):
    # b saw 30 twice and 10; a saw 10; d saw 40 (d is only known through that interaction).
    seen = (np.array(["b", "a", "b", "b", "d"]), np.array(["30", "10", "10", "30", "40"]))
    catalogue = build_catalogue(small_store, seen)
    assert catalogue.ids.tolist() == ["10", "20", "30", "40"]
    assert catalogue.titles.tolist() == ["Ten (1990)", "Twenty (1991)", "Thirty (1992)", "Forty (1993)"]  # fmt: skip
    np.testing.assert_array_equal(catalogue.counts, [2, 0, 2, 1])  # 30 counted twice
    users = tf.constant(["b", "zz", "a", "c", "d", "x"])
    expected = [
        [True, False, True, False],
        [False, False, False, False],
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, True],
        [False, False, False, False],
    ]
    np.testing.assert_array_equal(catalogue.seen.mask(users).numpy(), expected)
    # Known: users table (a, b, c), history table (x) and seen pairs (d); "zz" is not.
    np.testing.assert_array_equal(catalogue.seen.known(users).numpy(), [1, 0, 1, 1, 1, 1])
    assert catalogue.seen.mask(tf.constant([], tf.string)).shape == (0, 4)


def test_build_catalogue_titles_and_popularity_overrides(small_store):
    catalogue = build_catalogue(
        small_store,
        ([], []),
        movie_titles={"20": "Twenty", b"40": "Forty"},
        popularity=[5, 0, 1, 2],
    )
    assert catalogue.titles.tolist() == ["", "Twenty", "", "Forty"]
    np.testing.assert_array_equal(catalogue.counts, [5, 0, 1, 2])
    # No seen pairs: every store user is still known, with nothing masked.
    users = tf.constant(["a", "x", "nobody"])
    np.testing.assert_array_equal(catalogue.seen.known(users).numpy(), [True, True, False])
    assert not catalogue.seen.mask(users).numpy().any()


def test_build_catalogue_errors_name_the_field(small_store):
    with pytest.raises(ValueError, match="seen of type ndarray"):
        build_catalogue(small_store, np.array(["a"]))
    with pytest.raises(ValueError, match="1 user ids and 2 movie ids"):
        build_catalogue(small_store, (["a"], ["10", "20"]))
    with pytest.raises(ValueError, match=r"not in the catalogue, e.g. \['99'\]"):
        build_catalogue(small_store, (["a", "b"], ["10", "99"]))
    with pytest.raises(ValueError, match=r"popularity.shape=\(2,\)"):
        build_catalogue(small_store, ([], []), popularity=[1, 2])


def test_normalized_popularity_divides_by_the_largest_count():
    np.testing.assert_allclose(normalized_popularity([2, 0, 4]), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(normalized_popularity([0, 0]), [0.0, 0.0])
    with pytest.raises(ValueError, match="popularity"):
        normalized_popularity([1, -1])


def test_aligned_accepts_a_mapping_or_an_array_in_catalogue_order():
    ids = np.array(["1", "2", "3"])
    np.testing.assert_array_equal(aligned({"2": 5, 3: 1}, ids, "popularity", 0), [0, 5, 1])
    np.testing.assert_array_equal(aligned([4, 5, 6], ids, "popularity", 0), [4, 5, 6])
    with pytest.raises(ValueError, match=r"popularity.shape=\(2,\)"):
        aligned([1, 2], ids, "popularity", 0)


def test_index_of_finds_positions_and_names_unknown_ids():
    catalogue = np.array(["10", "30", "20"])
    np.testing.assert_array_equal(index_of(np.array(["20", "10"]), catalogue, "seen"), [2, 0])
    with pytest.raises(ValueError, match=r"\['99'\]"):
        index_of(np.array(["10", "99"]), catalogue, "seen")


def test_as_strings_accepts_ints_bytes_and_rejects_2d():
    assert as_strings(np.array([1, 22]), "ids").tolist() == ["1", "22"]
    assert as_strings(np.array([b"x", b"\xc3\xa9"]), "ids").tolist() == ["x", "é"]
    assert as_strings(np.array([b"y"], dtype=object), "ids").tolist() == ["y"]
    with pytest.raises(ValueError, match=r"ids.shape=\(1, 2\)"):
        as_strings(np.array([["a", "b"]]), "ids")

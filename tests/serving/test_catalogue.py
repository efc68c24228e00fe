"""Unit tests for tfrec.serving.catalogue: CSR seen items, popularity, id alignment."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.serving.catalogue import (
    SeenItems,
    aligned,
    as_strings,
    index_of,
    normalized_popularity,
)


def test_seen_items_mask_and_known_users_worked_by_hand():
    # known a, b, c (+ d only through an interaction); b saw item 2 twice and item 0.
    seen = SeenItems(
        known_users=np.array(["a", "b", "c"]),
        seen_users=np.array(["b", "a", "b", "b", "d"]),
        seen_items=np.array([2, 0, 0, 2, 3]),
        num_items=4,
    )
    # rows a=0, b=1, c=2, d=3, then the empty row for unknown users.
    np.testing.assert_array_equal(seen.indptr.numpy(), [0, 1, 3, 3, 4, 4])
    np.testing.assert_array_equal(seen.indices.numpy(), [0, 0, 2, 3])
    users = tf.constant(["b", "zz", "a", "c", "d"])
    expected = [
        [True, False, True, False],
        [False, False, False, False],
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, True],
    ]
    np.testing.assert_array_equal(seen.mask(users).numpy(), expected)
    np.testing.assert_array_equal(seen.known(users).numpy(), [True, False, True, True, True])


def test_seen_items_mask_of_empty_batch():
    seen = SeenItems(np.array(["a"]), np.array(["a"]), np.array([1]), num_items=3)
    assert seen.mask(tf.constant([], tf.string)).shape == (0, 3)


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

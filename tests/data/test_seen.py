"""SeenItems (CSR construction, dense masks, membership) and SeenItemsLookup (in-graph, by id)."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SeenItems, SeenItemsLookup


def _example():
    # user 0: {3, 1, 1(dup)}, user 1: {}, user 2: {0, 4}
    return SeenItems.from_pairs(np.array([2, 0, 0, 2, 0]), np.array([4, 3, 1, 0, 1]), 3, 5)


def test_from_pairs_sorts_and_deduplicates():
    seen = _example()
    np.testing.assert_array_equal(seen.indptr, [0, 2, 2, 4])
    np.testing.assert_array_equal(seen.indices, [1, 3, 0, 4])
    assert seen.num_users == 3 and seen.num_items == 5
    assert seen.indptr.dtype == seen.indices.dtype == np.int64
    np.testing.assert_array_equal(seen.counts(np.array([2, 1, 0])), [2, 0, 2])


def test_dense_mask_in_any_user_order():
    mask = _example().dense_mask(np.array([2, 1, 0, 2]))
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, [0, 4]] = True
    expected[2, [1, 3]] = True
    expected[3, [0, 4]] = True
    np.testing.assert_array_equal(mask, expected)


def test_contains_matches_dense_mask():
    seen = _example()
    users = np.array([0, 1, 2])
    items = np.array([[1, 2, 3, 4, 0], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    expected = np.take_along_axis(seen.dense_mask(users), items, axis=1)
    np.testing.assert_array_equal(seen.contains(users, items), expected)
    np.testing.assert_array_equal(seen.contains(users, np.array([3, 3, 4])), [True, False, True])
    empty = SeenItems.empty(2, 4)
    assert not empty.contains(np.array([0, 1]), np.array([[0, 1], [2, 3]])).any()
    assert not empty.dense_mask(np.array([1])).any()
    assert empty.num_users == 2 and empty.counts(np.array([0, 1])).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: SeenItems.from_pairs(np.array([0]), np.array([5]), 1, 5),
         r"item_index must lie in \[0, num_items=5\). Received: item_index value 5"),
        (lambda: SeenItems.from_pairs(np.array([3]), np.array([0]), 3, 5),
         r"user_index must lie in \[0, num_users=3\). Received: user_index value 3"),
        (lambda: SeenItems.from_pairs(np.array([0, 1]), np.array([0]), 3, 5),
         "same length. Received: len"),
        (lambda: SeenItems.from_pairs(np.array([0.5]), np.array([0]), 3, 5),
         "integer indices. Received: user_index.dtype=float64"),
        (lambda: SeenItems.from_pairs(np.array([0]), np.array([0]), 0, 5),
         "num_users must be a positive integer. Received: num_users=0"),
        (lambda: SeenItems(np.array([0, 2]), np.array([3, 1]), 5), "sorted and unique"),
        (lambda: SeenItems(np.array([0, 1, 1]), np.array([1, 1]), 5), r"indptr\[-1\] must equal"),
        (lambda: SeenItems(np.array([0, 3]), np.array([1, 2]), 5), r"indptr\[-1\] must equal"),
        (lambda: SeenItems(np.array([1, 1]), np.array([1]), 5), "indptr must start at 0"),
        (lambda: SeenItems(np.array([0, 1]), np.array([[1]]), 5), "1-D integer array"),
        (lambda: SeenItems(np.array([0, 1]), np.array([1]), 0), "num_items must be positive"),
        (lambda: _example().check_users(np.array([0, 3])),
         r"user_index must lie in \[0, seen.num_users=3\). Received: user_index value 3"),
    ],
)  # fmt: skip
def test_errors_name_the_problem(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


# ---------------------------------------------------------------------- SeenItemsLookup


@pytest.fixture
def lookup():
    # rows a: {1, 3}, b: {}, c: {0, 4}; "z" is known (e.g. in the users table) with no items.
    return _example().lookup(np.array(["a", "b", "c"]), known_users=["c", "z", "z"])


def _ids(*values):
    return tf.constant(list(values))


def test_lookup_rows_and_known(lookup):
    assert isinstance(lookup, SeenItemsLookup)
    assert lookup.num_users == 4 and lookup.num_items == 5  # a, b, c + the extra known "z"
    np.testing.assert_array_equal(lookup.rows(_ids("c", "a", "nobody", "z", "b")), [2, 0, 4, 3, 1])
    np.testing.assert_array_equal(
        lookup.known(_ids("c", "a", "nobody", "z", "b")), [True, True, False, True, True]
    )


def test_lookup_mask_and_matrix_by_hand(lookup):
    ids = _ids("c", "a", "nobody", "b", "z", "c")
    expected = np.zeros((6, 5), bool)
    expected[0, [0, 4]] = expected[5, [0, 4]] = True
    expected[1, [1, 3]] = True
    np.testing.assert_array_equal(lookup.mask(ids), expected)
    matrix = lookup.matrix(ids).numpy()
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(
        matrix, [[0, 4], [1, 3], [-1, -1], [-1, -1], [-1, -1], [0, 4]]
    )  # padded with -1 to the longest list in the batch
    assert lookup.matrix(_ids("b", "nobody")).shape == (2, 0)


def test_lookup_agrees_with_the_numpy_set_on_random_data():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 12)) < 0.3
    users, items = np.nonzero(mask)
    seen = SeenItems.from_pairs(users, items, 30, 12)
    lookup = seen.lookup(np.arange(100, 130))  # integer ids are looked up by their text
    order = rng.permutation(30)
    got = lookup.mask(tf.constant((order + 100).astype(str))).numpy()
    np.testing.assert_array_equal(got, seen.dense_mask(order))
    matrix = lookup.matrix(tf.constant((order + 100).astype(str))).numpy()
    for row, user in enumerate(order):
        listed = matrix[row][matrix[row] >= 0]
        np.testing.assert_array_equal(listed, np.flatnonzero(mask[user]))


def test_lookup_errors():
    with pytest.raises(ValueError, match=r"each of the 3 rows.*Received: user_ids.shape=\(2,\)"):
        _example().lookup(["a", "b"])
    with pytest.raises(ValueError, match="must be distinct. Received: duplicated"):
        _example().lookup(["a", "a", "b"])


def test_lookup_travels_inside_a_savedmodel(lookup, tmp_path):
    module = tf.Module()
    module.seen = lookup
    spec = tf.TensorSpec([None], tf.string)
    module.mask = tf.function(lambda ids: lookup.mask(ids), input_signature=[spec])
    module.matrix = tf.function(lambda ids: lookup.matrix(ids), input_signature=[spec])
    tf.saved_model.save(module, str(tmp_path / "seen"))
    reloaded = tf.saved_model.load(str(tmp_path / "seen"))
    ids = _ids("a", "nobody", "c")
    np.testing.assert_array_equal(reloaded.mask(ids), lookup.mask(ids))
    np.testing.assert_array_equal(reloaded.matrix(ids), [[1, 3], [-1, -1], [0, 4]])

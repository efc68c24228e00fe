"""ExcludeSet: CSR construction, dense masks and membership."""

import numpy as np
import pytest

from tfrec.evaluation import ExcludeSet


def _example():
    # user 0: {3, 1, 1(dup)}, user 1: {}, user 2: {0, 4}
    return ExcludeSet.from_pairs(np.array([2, 0, 0, 2, 0]), np.array([4, 3, 1, 0, 1]), 3, 5)


def test_from_pairs_sorts_and_deduplicates():
    exclude = _example()
    np.testing.assert_array_equal(exclude.indptr, [0, 2, 2, 4])
    np.testing.assert_array_equal(exclude.indices, [1, 3, 0, 4])
    assert exclude.num_users == 3 and exclude.num_items == 5
    np.testing.assert_array_equal(exclude.counts(np.array([2, 1, 0])), [2, 0, 2])


def test_dense_mask_in_any_user_order():
    mask = _example().dense_mask(np.array([2, 1, 0, 2]))
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, [0, 4]] = True
    expected[2, [1, 3]] = True
    expected[3, [0, 4]] = True
    np.testing.assert_array_equal(mask, expected)


def test_contains_matches_dense_mask():
    exclude = _example()
    users = np.array([0, 1, 2])
    items = np.array([[1, 2, 3, 4, 0], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    expected = np.take_along_axis(exclude.dense_mask(users), items, axis=1)
    np.testing.assert_array_equal(exclude.contains(users, items), expected)
    np.testing.assert_array_equal(exclude.contains(users, np.array([3, 3, 4])), [True, False, True])
    empty = ExcludeSet.empty(2, 4)
    assert not empty.contains(np.array([0, 1]), np.array([[0, 1], [2, 3]])).any()
    assert not empty.dense_mask(np.array([1])).any()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="item_index must lie in"):
        ExcludeSet.from_pairs(np.array([0]), np.array([5]), 1, 5)
    with pytest.raises(ValueError, match="user_index must lie in"):
        ExcludeSet.from_pairs(np.array([3]), np.array([0]), 3, 5)
    with pytest.raises(ValueError, match="same length"):
        ExcludeSet.from_pairs(np.array([0, 1]), np.array([0]), 3, 5)
    with pytest.raises(ValueError, match="sorted and unique"):
        ExcludeSet(np.array([0, 2]), np.array([3, 1]), 5)
    with pytest.raises(ValueError, match="indptr\\[-1\\] must equal"):
        ExcludeSet(np.array([0, 3]), np.array([1, 2]), 5)
    with pytest.raises(ValueError, match="exclude.num_users"):
        _example().check_users(np.array([0, 3]))

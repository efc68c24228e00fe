"""Click model: hits, held-out truth matrices and click probabilities worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfrec.experiments.clicks import (
    ClickModel,
    hits,
    index_items,
    log_position_bias,
    truth_matrix,
)

RECS = np.array([[3, 1, 4], [1, 5, 9], [2, 6, -1]])
TRUTH = np.array([[4, -1], [7, 8], [2, 6]])


def test_hits_by_hand():
    expected = [[False, False, True], [False, False, False], [True, True, False]]
    np.testing.assert_array_equal(hits(RECS, TRUTH), expected)
    np.testing.assert_array_equal(
        hits(RECS, np.array([3, 9, 7])), [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    )


def test_truth_matrix_pads_with_minus_one():
    got = truth_matrix([2, 0, 2, 1, 2], [6, 4, 2, 7, 9], num_users=4)
    np.testing.assert_array_equal(got, [[4, -1, -1], [7, -1, -1], [2, 6, 9], [-1, -1, -1]])
    with pytest.raises(ValueError, match="num_users=2"):
        truth_matrix([0, 2], [1, 1], num_users=2)


def test_index_items_shares_one_vocabulary_and_marks_padding():
    a = np.array([["242", "302"], ["50", ""]])
    b = np.array([["50", "242"], ["377", "302"]])
    truth = np.array(["302", "9"])
    ia, ib, it = index_items(a, b, truth, padding="")
    assert ia.shape == (2, 2) and it.shape == (2,)
    assert ia[0, 0] == ib[0, 1] and ia[0, 1] == ib[1, 1] == it[0] and ia[1, 0] == ib[0, 0]
    assert ia[1, 1] == -1 and len({*ia.ravel(), *ib.ravel(), *it} - {-1}) == 5
    np.testing.assert_array_equal(hits(ia, it), [[False, True], [False, False]])
    np.testing.assert_array_equal(hits(ib, it), [[False, False], [False, False]])
    with pytest.raises(ValueError, match="no arrays"):
        index_items()


def test_probabilities_with_and_without_position_bias():
    model = ClickModel(p_hit=0.6, p_background=0.05)
    p = model.probabilities(RECS, TRUTH)
    np.testing.assert_allclose(p, [[0.05, 0.05, 0.6], [0.05, 0.05, 0.05], [0.6, 0.6, 0.0]])
    bias = log_position_bias(3)
    assert bias == pytest.approx((1.0, 1 / math.log2(3), 0.5))
    biased = ClickModel(0.6, 0.05, bias).probabilities(RECS, TRUTH)
    np.testing.assert_allclose(biased, p * np.array(bias))


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="p_hit=1.5"):
        ClickModel(p_hit=1.5)
    with pytest.raises(ValueError, match="position_bias="):
        ClickModel(position_bias=(1.0, 2.0))
    with pytest.raises(ValueError, match="k=3"):
        ClickModel(position_bias=(1.0, 0.5)).probabilities(RECS, TRUTH)
    with pytest.raises(ValueError, match="integer item indices"):
        hits(RECS.astype(float), TRUTH)
    with pytest.raises(ValueError, match="Received shapes"):
        hits(RECS, TRUTH[:2])
    with pytest.raises(ValueError, match="k=0"):
        log_position_bias(0)

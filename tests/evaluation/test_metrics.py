"""Metrics checked against lists ranked by hand (expected numbers derived in the comments)."""

import numpy as np
import pytest

from tfrec.evaluation import metrics as m


def test_rank_of_targets_ties_count_against_and_excluded_never_count():
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1],  # target 1: 0.9 above, 0.5 tie -> rank 2
            [0.2, 0.8, 0.8, 0.8],  # target 3, col 1 excluded: only the tie at col 2 -> rank 1
            [0.3, 0.3, 0.3, 0.3],  # target 0, constant scorer: all 3 others tie -> rank 3
            [1.0, 2.0, 3.0, 4.0],  # target 3 best; exclusion of the target itself is ignored
        ]
    )
    exclude = np.zeros((4, 4), dtype=bool)
    exclude[1, 1] = True
    exclude[3, [0, 3]] = True
    ranks = m.rank_of_targets(scores, np.array([1, 3, 0, 3]), exclude)
    np.testing.assert_array_equal(ranks, [2, 1, 3, 0])
    np.testing.assert_array_equal(m.rank_of_targets(scores, np.array([1, 3, 0, 3])), [2, 2, 3, 0])


def test_rank_of_targets_errors():
    with pytest.raises(ValueError, match="NaN"):
        m.rank_of_targets(np.array([[0.1, np.nan]]), np.array([0]))
    with pytest.raises(ValueError, match="target_index must lie in"):
        m.rank_of_targets(np.ones((1, 3)), np.array([3]))
    with pytest.raises(ValueError, match="shape"):
        m.rank_of_targets(np.ones((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="exclude_mask must have the shape"):
        m.rank_of_targets(np.ones((1, 3)), np.array([0]), np.zeros((1, 2), bool))


def test_metrics_from_ranks_by_hand():
    ranks = np.array([0, 1, 2, 5, 10])
    # hits in top 3: ranks 0, 1, 2 -> 3/5.
    assert m.hit_rate_at_k(ranks, 3) == pytest.approx(0.6)
    assert m.recall_at_k(ranks, 3) == pytest.approx(0.6)
    assert m.precision_at_k(ranks, 3) == pytest.approx(0.2)
    # gains 1/log2(2), 1/log2(3), 1/log2(4) = 1 + 0.6309298 + 0.5.
    assert m.ndcg_at_k(ranks, 3) == pytest.approx((1 + 0.6309298 + 0.5) / 5)
    # 1 + 1/2 + 1/3 + 1/6 + 1/11.
    assert m.mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 6 + 1 / 11) / 5)
    assert m.mrr(ranks, k=3) == pytest.approx((1 + 1 / 2 + 1 / 3) / 5)
    assert m.map_at_k(ranks, 3) == pytest.approx((1 + 1 / 2 + 1 / 3) / 5)
    assert m.hit_rate_at_k(ranks, 1) == pytest.approx(0.2)


def test_rank_metric_errors():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        m.hit_rate_at_k(np.array([0]), 0)
    with pytest.raises(ValueError, match="non-negative integers"):
        m.ndcg_at_k(np.array([-1]), 5)
    with pytest.raises(ValueError, match="non-empty"):
        m.mrr(np.array([], dtype=np.int64))


def test_topk_metrics_by_hand():
    scores = np.array([[0.9, 0.8, 0.8, 0.7, 0.6, 0.5], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    relevant = np.array([[0, 1, 0, 0, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=bool)
    exclude = np.zeros_like(relevant)
    exclude[0, 3] = True
    # Row 0 order: item 0, item 2 (tie with relevant item 1 goes first), 1, 4, 5; item 3 removed.
    # Relevance along the list: 0 0 1 1 1, R = 3. Row 1: its single relevant item is first.
    result = m.topk_metrics(scores, relevant, exclude, ks=(2, 4))
    assert result["hr@2"] == 0.5 and result["recall@2"] == 0.5
    assert result["precision@2"] == pytest.approx((0 + 1 / 2) / 2)
    assert result["ndcg@2"] == pytest.approx(0.5)
    assert result["map@2"] == pytest.approx(0.5)
    assert result["hr@4"] == 1.0
    assert result["recall@4"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    row0_ndcg = (1 / np.log2(4) + 1 / np.log2(5)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    assert result["ndcg@4"] == pytest.approx((row0_ndcg + 1) / 2)
    row0_ap = (1 / 3 + 2 / 4) / 3  # precision at the two hits, over min(R, k) = 3
    assert result["map@4"] == pytest.approx((row0_ap + 1) / 2)
    assert result["mrr"] == pytest.approx((1 / 3 + 1) / 2)


def test_topk_metrics_k_beyond_candidates_and_relevant_beats_exclude():
    scores = np.array([[0.1, 0.2, 0.3]])
    relevant = np.array([[True, False, False]])
    exclude = np.array([[True, True, False]])  # exclusion of the relevant item is ignored
    # List: item 2, item 0 -> the hit is at position 2.
    result = m.topk_metrics(scores, relevant, exclude, ks=(10,))
    assert result["precision@10"] == pytest.approx(1 / 10)
    assert result["ndcg@10"] == pytest.approx(1 / np.log2(3))
    assert result["mrr"] == pytest.approx(1 / 2)


def test_topk_metrics_agree_with_rank_metrics_for_one_relevant_item():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 12)).astype(float)  # many ties
    targets = rng.integers(0, 12, size=50)
    exclude = rng.random((50, 12)) < 0.3
    relevant = np.zeros((50, 12), dtype=bool)
    relevant[np.arange(50), targets] = True
    ranks = m.rank_of_targets(scores, targets, exclude)
    result = m.topk_metrics(scores, relevant, exclude, ks=(3, 5))
    for k in (3, 5):
        assert result[f"hr@{k}"] == pytest.approx(m.hit_rate_at_k(ranks, k))
        assert result[f"ndcg@{k}"] == pytest.approx(m.ndcg_at_k(ranks, k))
        assert result[f"map@{k}"] == pytest.approx(m.map_at_k(ranks, k))
        assert result[f"precision@{k}"] == pytest.approx(m.precision_at_k(ranks, k))
    assert result["mrr"] == pytest.approx(m.mrr(ranks))


def test_topk_metrics_errors():
    with pytest.raises(ValueError, match="at least one relevant item"):
        m.topk_metrics(np.ones((2, 3)), np.array([[1, 0, 0], [0, 0, 0]], bool))
    with pytest.raises(ValueError, match="boolean"):
        m.topk_metrics(np.ones((1, 3)), np.array([[1, 0, 0]]))


def test_auc_by_hand_with_ties():
    # Positives 0.9, 0.5, 0.1; negatives 0.9, 0.3. Pairs won: (0.9,0.9) half, (0.9,0.3),
    # (0.5,0.3) -> 2.5 of 6.
    assert m.auc([1, 0, 1, 0, 1], [0.9, 0.9, 0.5, 0.3, 0.1]) == pytest.approx(2.5 / 6)
    assert m.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.auc([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_logloss_by_hand_and_clipping():
    assert m.logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert m.logloss([0], [1.0]) == pytest.approx(-np.log(1e-7), rel=1e-6)


def test_pointwise_errors():
    with pytest.raises(ValueError, match="both positive and negative"):
        m.auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        m.auc([1, 0], [0.2])
    with pytest.raises(ValueError, match="same length"):
        m.logloss([1, 0, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="not logits"):
        m.logloss([1, 0], [2.0, 0.3])
    with pytest.raises(ValueError, match="0/1"):
        m.auc([2, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        m.logloss([], [])

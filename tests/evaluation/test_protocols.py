"""Protocols run on toy score functions whose ranks are known by hand."""

import warnings

import numpy as np
import pytest

from tfrec.data import SeenItems
from tfrec.evaluation import (
    evaluate,
    format_table,
    full_ranking,
    pointwise,
    sampled_ranking,
)

# Score table [user, item] for 3 users and 6 items.
TABLE = np.array(
    [
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    ]
)


def table_score_fn(user_index, item_index):
    return np.take_along_axis(TABLE[user_index], item_index, axis=1)


def test_full_ranking_by_hand():
    # user 0, target 2, item 0 excluded: only item 1 (4 > 3) is above -> rank 1.
    # user 1, target 4, exclude {0, 4}: the target stays; items 1, 2, 3, 5 tie -> rank 4.
    # user 2, target 5: best -> rank 0.
    exclude = SeenItems.from_pairs(np.array([0, 1, 1]), np.array([0, 0, 4]), 3, 6)
    users, targets = np.array([0, 1, 2]), np.array([2, 4, 5])
    result = full_ranking(table_score_fn, users, targets, 6, exclude, ks=(1, 3), batch_size=2)
    assert result["protocol"] == "full"
    assert result["hr@1"] == pytest.approx(1 / 3)
    assert result["hr@3"] == pytest.approx(2 / 3)
    assert result["recall@3"] == pytest.approx(2 / 3)
    assert result["precision@3"] == pytest.approx(2 / 9)
    assert result["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1) / 3)
    assert result["map@3"] == pytest.approx((1 / 2 + 1) / 3)
    assert result["mrr"] == pytest.approx((1 / 2 + 1 / 5 + 1) / 3)
    # Same numbers from the CSR pair and from one big batch; without exclusions user 0 is rank 2.
    pair = (exclude.indptr, exclude.indices)
    assert full_ranking(table_score_fn, users, targets, 6, pair, ks=(1, 3)) == result
    no_exclude = full_ranking(table_score_fn, users, targets, 6, None, ks=(3,))
    assert no_exclude["mrr"] == pytest.approx((1 / 3 + 1 / 6 + 1) / 3)


def test_sampled_ranking_by_hand_and_candidates_are_valid():
    num_items, num_negatives = 10, 3
    exclude = SeenItems.from_pairs(
        np.array([0, 0, 1, 1, 2]), np.array([1, 2, 8, 9, 5]), 3, num_items
    )
    seen = []

    def score_fn(user_index, item_index):
        seen.append((user_index.copy(), item_index.copy()))
        # users 0 and 1 score by item id; user 2 is a constant scorer.
        return np.where(user_index[:, None] == 2, 0.0, item_index.astype(float))

    # user 0, target 9 (largest id) -> rank 0; user 1, target 0 (smallest) -> rank 3;
    # user 2, constant scores -> every negative ties -> rank 3.
    users, targets = np.array([0, 1, 2]), np.array([9, 0, 4])
    result = sampled_ranking(
        score_fn, users, targets, num_items, exclude, num_negatives, ks=(1, 4), batch_size=2
    )
    assert result["protocol"] == "sampled-3-uniform"
    assert result["hr@1"] == pytest.approx(1 / 3)
    assert result["hr@4"] == pytest.approx(1.0)
    assert result["ndcg@4"] == pytest.approx((1 + 2 / np.log2(5)) / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 4 + 1 / 4) / 3)
    batch_users = np.concatenate([u for u, _ in seen])
    candidates = np.concatenate([items for _, items in seen])
    np.testing.assert_array_equal(candidates[:, 0], targets)
    negatives = candidates[:, 1:]
    assert not exclude.contains(batch_users, negatives).any()
    assert not (negatives == targets[:, None]).any()
    assert (np.diff(np.sort(negatives, axis=1), axis=1) > 0).all()


def test_sampled_ranking_is_deterministic_given_seed():
    rng = np.random.default_rng(0)
    scores = rng.random((20, 50))

    def score_fn(user_index, item_index):
        return np.take_along_axis(scores[user_index], item_index, axis=1)

    users, targets = np.arange(20), rng.integers(0, 50, 20)
    exclude = SeenItems.from_pairs(rng.integers(0, 20, 200), rng.integers(0, 50, 200), 20, 50)
    counts = rng.integers(1, 9, 50).astype(float)
    kwargs = dict(num_negatives=10, distribution="popularity", item_counts=counts, ks=(5,))
    first = sampled_ranking(score_fn, users, targets, 50, exclude, seed=4, batch_size=7, **kwargs)
    again = sampled_ranking(score_fn, users, targets, 50, exclude, seed=4, batch_size=20, **kwargs)
    assert first == again
    assert first["protocol"] == "sampled-10-popularity"


METRICS = {"hr@2", "ndcg@2", "recall@2", "precision@2", "map@2", "mrr"}


def test_evaluate_returns_one_flat_dict_per_protocol():
    seen = SeenItems.from_pairs(np.array([0]), np.array([3]), 3, 6)
    users, targets = np.array([0, 2]), np.array([0, 5])
    result = evaluate(table_score_fn, users, targets, 6, seen, ks=(2,), num_negatives=4)
    assert set(result) == {f"{p}_{m}" for p in ("sampled", "full") for m in METRICS}
    assert result["full_hr@2"] == 1.0 and result["sampled_mrr"] == 1.0  # targets are best-scored
    full = full_ranking(table_score_fn, users, targets, 6, seen, ks=(2,))
    sampled = sampled_ranking(table_score_fn, users, targets, 6, seen, 4, ks=(2,))
    assert {k: result[f"full_{k}"] for k in METRICS} == {k: full[k] for k in METRICS}
    assert {k: result[f"sampled_{k}"] for k in METRICS} == {k: sampled[k] for k in METRICS}
    only_full = evaluate(table_score_fn, users, targets, 6, seen, ks=(2,), protocols=("full",))
    assert set(only_full) == {f"full_{m}" for m in METRICS}
    only_sampled = evaluate(
        table_score_fn, users, targets, 6, seen, ks=(2,), protocols=["sampled"], num_negatives=4
    )
    assert only_sampled == {k: v for k, v in result.items() if k.startswith("sampled_")}
    for protocols in ((), ("full", "pointwise")):
        with pytest.raises(ValueError, match="protocols must be a non-empty subset"):
            evaluate(table_score_fn, users, targets, 6, seen, protocols=protocols)


def test_evaluate_on_a_small_catalogue_samples_what_is_there_with_a_warning():
    # User 1 has 2 seen items of 6, so only 3 negatives exist for it: 99 cannot be drawn.
    seen = SeenItems.from_pairs(np.array([1, 1]), np.array([0, 5]), 3, 6)
    users, targets = np.array([0, 1, 2]), np.array([0, 4, 5])
    with pytest.warns(UserWarning, match="Only 3 negatives are available.*uses 3 instead of 99"):
        result = evaluate(table_score_fn, users, targets, 6, seen, ks=(1, 3))
    expected = sampled_ranking(table_score_fn, users, targets, 6, seen, 3, ks=(1, 3))
    assert {k: v for k, v in result.items() if k.startswith("sampled_")} == {
        f"sampled_{k}": v for k, v in expected.items() if k != "protocol"
    }
    # Users 0 and 2 score their targets best (rank 0); user 1's target ties with all 3 of its
    # negatives (rank 3), which are every item it may have: sampled equals full here.
    assert result["sampled_mrr"] == pytest.approx((1 + 1 / 4 + 1) / 3)
    assert result["sampled_hr@3"] == pytest.approx(2 / 3)
    assert {k[len("sampled_") :]: v for k, v in result.items() if k.startswith("sampled_")} == {
        k[len("full_") :]: v for k, v in result.items() if k.startswith("full_")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough negatives: no warning
        evaluate(table_score_fn, users, targets, 6, seen, ks=(1,), num_negatives=3)


def test_protocol_errors():
    exclude = SeenItems.empty(3, 6)
    with pytest.raises(ValueError, match="user_index is empty"):
        full_ranking(table_score_fn, np.array([], np.int64), np.array([], np.int64), 6, exclude)
    with pytest.raises(ValueError, match="target_index must lie in"):
        full_ranking(table_score_fn, np.array([0]), np.array([6]), 6, exclude)
    with pytest.raises(ValueError, match="same length"):
        sampled_ranking(table_score_fn, np.array([0, 1]), np.array([0]), 6, exclude)
    with pytest.raises(ValueError, match=r"seen.num_users=3\). Received: user_index value 3"):
        full_ranking(table_score_fn, np.array([3]), np.array([0]), 6, exclude)
    with pytest.raises(ValueError, match="built for 6 items"):
        full_ranking(table_score_fn, np.array([0]), np.array([0]), 7, exclude)
    with pytest.raises(ValueError, match="score_fn must return"):
        full_ranking(lambda u, i: np.zeros((len(u), 2)), np.array([0]), np.array([0]), 6, exclude)
    with pytest.raises(ValueError, match="only 5 items to draw"):
        sampled_ranking(table_score_fn, np.array([0]), np.array([0]), 6, exclude, num_negatives=6)
    with pytest.raises(ValueError, match="exclude must be a SeenItems.*Received: dict"):
        full_ranking(table_score_fn, np.array([0]), np.array([0]), 6, {"a": 1})


def test_pointwise_and_format_table():
    assert pointwise([1, 0], [0.8, 0.4]) == pytest.approx(
        {"auc": 1.0, "logloss": -(np.log(0.8) + np.log(0.6)) / 2}
    )
    table = format_table(
        {"EASE": {"hr@10": 0.25, "mrr": 0.125, "protocol": "full"}, "Popularity": {"hr@10": 0.5}}
    )
    assert table.splitlines() == [
        "model        hr@10     mrr  protocol",
        "----------  ------  ------  --------",
        "EASE        0.2500  0.1250      full",
        "Popularity  0.5000       -         -",
    ]
    with pytest.raises(ValueError, match="non-empty dict"):
        format_table({})

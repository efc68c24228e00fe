"""Splits on the tiny hand-made ratings (see conftest.RATINGS for the rows and timestamps)."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import (
    DataError,
    DataWarning,
    chronological_split,
    deduplicate_ratings,
    leave_one_out,
    random_split,
)


@pytest.fixture
def ratings(files):
    users, movies, stars, times = zip(*files.ratings, strict=True)
    n = len(users)
    return {
        "user_id": np.array(users),
        "movie_id": np.array(movies),
        "user_rating": np.array(stars, np.float32),
        "timestamp": np.array(times, np.int64),
        "row": np.arange(n),
        "history": np.arange(2 * n).reshape(n, 2),  # a 2-D column travels with its row
    }


def _rows(split):
    return [part["row"].tolist() for part in split]


def test_leave_one_out_by_hand(ratings):
    split = leave_one_out(ratings)
    # user 1: time order rows 0 (t100), 2 (t200), 1 and 3 (both t300; file order breaks the
    # tie) -> test row 3, valid row 1. User 2 has 2 ratings: all train. User 3: rows 6..9.
    assert _rows(split) == [[0, 2, 4, 5, 6, 7], [1, 8], [3, 9]]
    np.testing.assert_array_equal(split.test["history"], ratings["history"][[3, 9]])
    assert set(split.test) == set(ratings)


def test_leave_one_out_test_items_never_in_train_and_latest(ratings):
    split = leave_one_out(ratings)
    train_pairs = set(zip(split.train["user_id"], split.train["movie_id"], strict=True))
    test = zip(*(split.test[k] for k in ("user_id", "movie_id", "timestamp")), strict=True)
    for user, movie, time in test:
        assert (user, movie) not in train_pairs
        assert time >= split.train["timestamp"][split.train["user_id"] == user].max()


def test_leave_one_out_uses_user_index_when_present(ratings):
    with_index = dict(ratings, user_index=np.unique(ratings["user_id"], return_inverse=True)[1])
    assert _rows(leave_one_out(with_index)) == _rows(leave_one_out(ratings))


def test_leave_one_out_needs_a_user_with_three_ratings(ratings):
    few = {k: v[4:6] for k, v in ratings.items()}
    with pytest.raises(ValueError, match="empty valid split.*3 or more ratings"):
        leave_one_out(few)


def test_chronological_global_cut(ratings):
    # time order: rows 6,7,8,9,4,5,0,2,1,3 -> 8 train, 1 valid, 1 test
    assert _rows(chronological_split(ratings)) == [[0, 2, 4, 5, 6, 7, 8, 9], [1], [3]]


def test_chronological_per_user(ratings):
    split = chronological_split(ratings, (0.5, 0.25, 0.25), per_user=True)
    # user 1 (4): 2 train, 1 valid, 1 test; user 2 (2): 1 train, 1 valid; user 3 like user 1
    assert _rows(split) == [[0, 2, 4, 6, 7], [1, 5, 8], [3, 9]]
    # 4 ratings: cuts round(3.2) = 3 and round(3.6) = 4 -> 3 train, 1 valid, 0 test
    with pytest.raises(ValueError, match="chronological_split produced an empty test split"):
        chronological_split(ratings, (0.8, 0.1, 0.1), per_user=True)


def test_random_split_is_deterministic_and_complete(ratings):
    first = random_split(ratings, (0.6, 0.2, 0.2), seed=7)
    assert _rows(first) == _rows(random_split(ratings, (0.6, 0.2, 0.2), seed=7))
    assert [len(rows) for rows in _rows(first)] == [6, 2, 2]
    assert sorted(sum(_rows(first), [])) == list(range(10))
    others = {str(_rows(random_split(ratings, (0.6, 0.2, 0.2), seed=s))) for s in range(5)}
    assert len(others) > 1
    for part in first:  # each part stays in file order
        assert part["row"].tolist() == sorted(part["row"].tolist())


@pytest.mark.parametrize(
    ("ratios", "pattern"),
    [
        ((0.5, 0.1, 0.1), r"sum to 1.*sum 0\.7"),
        ((1.2, -0.1, -0.1), "non-negative"),
        ((0.5, 0.5), "three finite numbers"),
        ((0.5, float("nan"), 0.5), "three finite numbers"),
        ((1.0, 0.0, 0.0), "empty valid split"),
    ],
)
def test_bad_ratios(ratings, ratios, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_split(ratings, ratios)
    with pytest.raises(ValueError, match=pattern):
        chronological_split(ratings, ratios)


def test_bad_tables(ratings):
    with pytest.raises(ValueError, match="equal lengths"):
        leave_one_out(dict(ratings, row=np.arange(3)))
    with pytest.raises(ValueError, match="needs a timestamp column"):
        leave_one_out({k: v for k, v in ratings.items() if k != "timestamp"})


@pytest.mark.parametrize("protocol", [leave_one_out, chronological_split, random_split])
def test_repeated_pairs_are_refused(ratings, protocol):
    # Row 9 repeats row 5's pair (user 2, movie 4): the two copies could land in two splits.
    repeated = dict(ratings, user_id=ratings["user_id"].copy(), movie_id=ratings["movie_id"].copy())
    repeated["user_id"][9], repeated["movie_id"][9] = "2", "4"
    with pytest.raises(DataError, match=r"one rating per \(user, movie\) pair.*1 repeated rows"):
        protocol(repeated)
    with pytest.warns(DataWarning, match="dropped 1 ratings"):
        split = protocol(deduplicate_ratings(repeated))
    pairs = [set(zip(p["user_id"], p["movie_id"], strict=True)) for p in split]
    assert sum(len(p) for p in pairs) == 9 and len(set().union(*pairs)) == 9

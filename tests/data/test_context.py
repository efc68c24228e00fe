"""Context features and labels on the tiny hand-made ratings (see conftest.RATINGS)."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import explicit_labels, implicit_labels, last_history, recent_history


@pytest.fixture
def ratings(files):
    users, movies, stars, times = zip(*files.ratings, strict=True)
    return {
        "user_id": np.array(users),
        "movie_id": np.array(movies),
        "user_rating": np.array(stars, np.float32),
        "timestamp": np.array(times, np.int64),
    }


def test_recent_history_by_hand(ratings):
    history = recent_history(ratings, length=2)
    assert history.dtype.kind == "U" and history.shape == (10, 2)
    assert history.tolist() == [
        ["", ""],  # row 0: user 1's first rating (t=100)
        ["1", "3"],  # row 1 (t=300): rows 0 and 2 (t=200) before it; row 3 ties but is later
        ["", "1"],  # row 2 (t=200)
        ["3", "2"],  # row 3 (t=300, after row 1 in file order)
        ["", ""],
        ["", "1"],
        ["", ""],
        ["", "2"],
        ["2", "3"],
        ["3", "4"],
    ]


def test_recent_history_never_leaks_the_row_or_later_rows(ratings):
    history = recent_history(ratings, length=5)
    key = list(zip(ratings["timestamp"], range(10), strict=True))
    for row in range(10):
        same_user = np.flatnonzero(ratings["user_id"] == ratings["user_id"][row])
        earlier = [r for r in same_user if key[r] < key[row]]
        expected = [ratings["movie_id"][r] for r in sorted(earlier, key=key.__getitem__)]
        assert history[row].tolist() == [""] * (5 - len(expected)) + expected


def test_last_history(ratings):
    out = last_history(ratings, length=3)
    assert out["user_id"].tolist() == ["1", "2", "3"]
    assert out["history"].tolist() == [["3", "2", "5"], ["", "1", "4"], ["3", "4", "5"]]
    aligned = last_history(ratings, np.array(["3", "9", "1", "2"]), length=1)
    assert aligned["user_id"].tolist() == ["3", "9", "1", "2"]
    assert aligned["history"].tolist() == [["5"], [""], ["5"], ["4"]]  # user 9: no ratings
    with pytest.raises(ValueError, match=r"user_id values missing from user_ids.*'3'"):
        last_history(ratings, np.array(["1", "2"]))


def test_bad_length(ratings):
    with pytest.raises(ValueError, match="length must be a positive integer.*length=0"):
        recent_history(ratings, length=0)
    with pytest.raises(ValueError, match="movie_id"):
        last_history({"user_id": ratings["user_id"], "timestamp": ratings["timestamp"]})


def test_labels(ratings):
    assert implicit_labels(ratings).tolist() == [1.0] * 10
    assert implicit_labels(ratings).dtype == np.float32
    labels = explicit_labels(ratings)
    assert labels.dtype == np.float32
    assert labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # ratings 5 3 4 2 4 1 5 3 4 2
    assert explicit_labels(ratings, threshold=5).tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="threshold must be a finite rating"):
        explicit_labels(ratings, threshold=float("nan"))
    with pytest.raises(ValueError, match="'user_rating' column"):
        implicit_labels({"user_id": ratings["user_id"]})

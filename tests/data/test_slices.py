"""`time_slice` (tfrec/data/slices.py): the earliest ratings, and only who existed by then."""

import numpy as np
import pytest

from tfrec.data import from_tables, time_slice
from tfrec.data.parsers import Tables


@pytest.fixture
def hand_made():
    """Six ratings of a variant without a users table; two share a timestamp."""
    ratings = {
        "user_id": np.array(["3", "1", "2", "1", "3", "4"]),
        "movie_id": np.array(["10", "10", "20", "30", "40", "20"]),
        "user_rating": np.array([4.0, 3.5, 5.0, 2.0, 1.0, 4.5], np.float32),
        "timestamp": np.array([50, 10, 30, 30, 60, 20], np.int64),
    }
    movies = {
        "movie_id": np.array(["10", "20", "30", "40", "50"]),
        "movie_title": np.array(["A (1990)", "B (1991)", "C (1992)", "D (1993)", "E (1994)"]),
        "movie_genres": np.full((5, 1), 0, np.int64),
    }
    return from_tables(Tables(ratings, movies, None), "latest-small", "test")


def test_keeps_the_earliest_ratings_and_who_existed_then(hand_made):
    # Time order: t=10 (1,10), t=20 (4,20), t=30 (2,20) then (1,30) by file order, t=50, t=60.
    past = time_slice(hand_made, 0.5)
    assert past.num_ratings == 3
    kept = sorted(zip(past.ratings["user_id"], past.ratings["movie_id"], strict=True))
    assert kept == [("1", "10"), ("2", "20"), ("4", "20")]
    assert past.user_ids.tolist() == ["1", "2", "4"]
    assert past.movie_ids.tolist() == ["10", "20"]
    assert (past.user_ids[past.ratings["user_index"]] == past.ratings["user_id"]).all()
    assert (past.movie_ids[past.ratings["movie_index"]] == past.ratings["movie_id"]).all()
    # The cut fell inside a tie (t=30), broken by file order: (2, 20) is kept, (1, 30) not.
    assert ("1", "30") not in kept
    later = time_slice(hand_made, 4 / 6).ratings
    assert ("1", "30") in zip(later["user_id"], later["movie_id"], strict=True)
    assert "earliest 0.5" in past.origin


def test_whole_and_generated_data(hand_made, tiny_movielens):
    assert time_slice(hand_made, 1.0) is hand_made
    past = time_slice(tiny_movielens, 0.3)
    assert past.num_ratings == int(np.floor(tiny_movielens.num_ratings * 0.3 + 0.5))
    dropped = ~np.isin(tiny_movielens.ratings["timestamp"], past.ratings["timestamp"])
    assert past.ratings["timestamp"].max() <= tiny_movielens.ratings["timestamp"][dropped].min()
    assert set(past.users) == set(tiny_movielens.users)  # side features kept
    rows = np.searchsorted(tiny_movielens.user_ids.astype(int), past.user_ids.astype(int))
    np.testing.assert_array_equal(
        past.users["raw_user_age"], tiny_movielens.users["raw_user_age"][rows]
    )
    assert past.num_movies < tiny_movielens.num_movies


@pytest.mark.parametrize("fraction", [0, -0.2, 1.5, float("nan"), "half", True])
def test_bad_fraction_names_the_fix(hand_made, fraction):
    with pytest.raises(ValueError, match="fraction"):
        time_slice(hand_made, fraction)


def test_a_fraction_keeping_nothing_is_refused(hand_made):
    with pytest.raises(ValueError, match="keeps no rating"):
        time_slice(hand_made, 0.01)

"""Ratings checks: scales per variant, and the duplicate policy (keep the latest rating).

Issue 14 finding 7: -4, 1e6 and duplicated rows were accepted, and a duplicated latest rating
put the same (user, movie) pair in both the valid and the test split.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import (
    DataError,
    DataWarning,
    deduplicate_ratings,
    schema,
)
from tfrec.data.checks import check_ratings, pair_keys, superseded_rows


def _table(rows):
    users, movies, stars, times = zip(*rows, strict=True)
    return {
        "user_id": np.array(users),
        "movie_id": np.array(movies),
        "user_rating": np.array(stars, np.float32),
        "timestamp": np.array(times, np.int64),
        "row": np.arange(len(rows)),
    }


def test_duplicate_policy_by_hand():
    ratings = _table(
        [
            ("1", "7", 1, 50),  # 0: (1, 7) again at t=90 (row 3): dropped
            ("2", "7", 2, 10),  # 1: unique
            ("1", "8", 3, 70),  # 2: (1, 8) tie at t=70 with row 4: the later row wins
            ("1", "7", 4, 90),  # 3: kept (latest)
            ("1", "8", 5, 70),  # 4: kept (tie, later in the file)
            ("1", "7", 5, 20),  # 5: dropped (earlier than row 3)
        ]
    )
    assert superseded_rows(ratings).tolist() == [True, False, True, False, False, True]
    with pytest.warns(
        DataWarning, match=r"t: dropped 3 ratings .*latest.*user_id='1', movie_id='7'"
    ):
        kept = deduplicate_ratings(ratings, where="t")
    assert kept["row"].tolist() == [1, 3, 4]  # file order
    assert kept["user_rating"].tolist() == [2, 4, 5]


def test_no_duplicates_returns_the_same_table():
    ratings = _table([("1", "7", 1, 5), ("1", "8", 2, 5), ("2", "7", 3, 5)])
    assert deduplicate_ratings(ratings) is ratings


def test_pair_keys_from_ids_and_indices_agree():
    ratings = _table([("10", "7", 1, 5), ("2", "70", 2, 5), ("10", "7", 3, 6), ("x", "7", 1, 1)])
    keys = pair_keys(ratings)
    assert keys[0] == keys[2] and len(set(keys.tolist())) == 3
    indexed = dict(ratings, user_index=np.array([0, 1, 0, 2]), movie_index=np.array([0, 1, 0, 0]))
    assert pair_keys(indexed).tolist() == [0, 3, 0, 4]  # user_index * 2 + movie_index
    huge = dict(ratings, user_id=np.array(["9" * 18, "2", "9" * 18, "3"]))
    keys = pair_keys(huge)  # would overflow user * width: densified first
    assert keys[0] == keys[2] and len(set(keys.tolist())) == 3


@pytest.mark.parametrize(
    ("variant", "values", "bad"),
    [
        ("100k", [1, 5, 3], None),
        ("100k", [1, 5.5, 3], 5.5),
        ("1m", [-4, 1, 1], -4.0),
        ("100k", [1, 1e6, 1], 1e6),
        ("100k", [1, 2, np.nan], "nan"),
        ("20m", [0.5, 5, 2.5], None),
        ("25m", [0.5, 4.25, 1], 4.25),
        ("latest-small", [0, 1, 1], 0.0),
    ],
)
def test_rating_scales(variant, values, bad):
    ratings = {"user_id": np.array(["1", "2", "3"]), "user_rating": np.array(values, np.float32)}
    if bad is None:
        check_ratings(ratings, variant, "here")
        return
    pattern = rf"here row \d \(user_id='\d'\): invalid user_rating. Received: user_rating={bad}"
    with pytest.raises(DataError, match=pattern):
        check_ratings(ratings, variant, "here")


def test_rating_rule_text():
    assert schema.rating_rule("1m") == "MovieLens 1m ratings are whole stars 1 to 5"
    assert schema.rating_rule("25m").endswith("half stars 0.5 to 5 in steps of 0.5")

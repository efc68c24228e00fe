"""SplitData on the tiny hand-made ratings (conftest.RATINGS): what is known when, by hand.

Leave-one-out on those ratings (movie index = movie id - 1, user index = user id - 1):
user 0 watches 1 (t100), 3 (t200), 2 (t300), 5 (t300, later in file): train {0, 2},
valid 1, test 4; user 1 has 2 ratings, all train {0, 3}; user 2 watches 2, 3, 4, 5:
train {1, 2}, valid 3, test 4.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import dataclasses

import numpy as np
import pytest

from tfrec.data import AS_OF, SeenItems, Split, SplitData, leave_one_out, load_movielens
from tfrec.data.splits import take


@pytest.fixture
def ml(files, tmp_path):
    return load_movielens("100k", path=files.write_100k(tmp_path / "raw"))


@pytest.fixture
def data(ml):
    return SplitData.from_movielens(ml)


def _sets(seen: SeenItems):
    return [seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist() for u in range(3)]


def test_catalogue_and_users(data, ml):
    assert (data.num_users, data.num_items) == (3, 5)
    assert data.item_ids.tolist() == ["1", "2", "3", "4", "5"]
    assert data.user_ids.tolist() == ["1", "2", "3"]
    assert data.items is ml.movies
    assert data.users["user_occupation_text"].tolist() == ["technician", "other", "student"]
    assert data.train is data.split.train
    without = SplitData.from_movielens(dataclasses.replace(ml, users=None))
    assert list(without.users) == ["user_id"]
    assert without.users["user_id"].tolist() == ["1", "2", "3"]


def test_known_as_of_each_point_in_time(data):
    def pairs(table):
        return sorted(zip(table["user_index"].tolist(), table["movie_index"].tolist(), strict=True))

    train = [(0, 0), (0, 2), (1, 0), (1, 3), (2, 1), (2, 2)]
    assert pairs(data.known("train")) == pairs(data.known("valid")) == train
    assert pairs(data.known("test")) == sorted(train + [(0, 1), (2, 3)])
    assert pairs(data.known("all")) == sorted(train + [(0, 1), (2, 3), (0, 4), (2, 4)])
    assert AS_OF == ("train", "valid", "test", "all")


def test_seen_targets_and_item_counts(data):
    assert _sets(data.seen("train")) == _sets(data.seen("valid")) == [[0, 2], [0, 3], [1, 2]]
    assert _sets(data.seen("test")) == [[0, 1, 2], [0, 3], [1, 2, 3]]
    assert _sets(data.seen("all")) == [[0, 1, 2, 4], [0, 3], [1, 2, 3, 4]]
    assert data.seen("test") is data.seen("test")  # cached
    assert data.seen("test").num_items == 5
    users, items = data.targets("valid")
    assert (users.tolist(), items.tolist()) == ([0, 2], [1, 3])
    users, items = data.targets("test")
    assert (users.tolist(), items.tolist()) == ([0, 2], [4, 4])
    assert users.dtype == items.dtype == np.int64
    assert data.item_counts().tolist() == [2, 1, 2, 1, 0]  # as of train
    assert data.item_counts("test").tolist() == [2, 2, 2, 2, 0]
    assert data.item_counts("all").tolist() == [2, 2, 2, 2, 2]


def test_a_given_split_is_used(ml):
    ratings = ml.ratings
    rows = np.arange(10)
    split = Split(take(ratings, rows[:8]), take(ratings, rows[8:9]), take(ratings, rows[9:]))
    data = SplitData.from_movielens(ml, split)
    assert data.split is split
    assert data.targets("test")[1].tolist() == [4]  # row 9: user 3 (index 2) -> movie 5


def test_errors(data, ml):
    with pytest.raises(ValueError, match=r"`as_of` must be one of .*Received: as_of='later'"):
        data.known("later")
    with pytest.raises(ValueError, match=r"`as_of` must be one of"):
        data.seen("later")
    with pytest.raises(
        ValueError, match=r"`split` must be 'valid' or 'test'. Received: split='train'"
    ):
        data.targets("train")
    full = leave_one_out(ml.ratings)
    empty = take(ml.ratings, np.zeros(0, np.int64))
    for index, name in enumerate(("train", "valid", "test")):
        parts = list(full)
        parts[index] = empty
        with pytest.raises(ValueError, match=f"The {name} split is empty. Fix:"):
            SplitData.from_movielens(ml, Split(*parts))

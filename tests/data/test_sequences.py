"""sequence_windows: chronological, left-padded next-item windows worked out by hand."""

import numpy as np
import pytest

from tfrec.data import sequence_windows
from tfrec.data.sequences import PAD

# (user_index, movie_index, timestamp) in file order; users interleaved on purpose.
ROWS = [
    (0, 1, 100),
    (2, 20, 10),
    (0, 2, 300),  # ties with the row (0, 5, 300) below: file order puts 2 before 5
    (3, 7, 5),  # user 3's only interaction: no window
    (0, 3, 200),
    (1, 0, 50),
    (0, 5, 300),
    (1, 4, 60),
    (2, 21, 20),
    (2, 22, 30),
    (2, 23, 40),
    (2, 24, 50),
    (2, 25, 60),
]
# Chronological sequences: user 0 [1, 3, 2, 5], user 1 [0, 4], user 2 [20, ..., 25].


def _table(rows=ROWS):
    users, items, times = (np.array(column) for column in zip(*rows, strict=True))
    return {"user_index": users, "movie_index": items, "timestamp": times}


@pytest.mark.parametrize(
    ("length", "users", "items"),
    [
        (1, [0, 0, 0, 1, 2, 2, 2, 2, 2],
         [[1, 3], [3, 2], [2, 5], [0, 4], [20, 21], [21, 22], [22, 23], [23, 24], [24, 25]]),
        (2, [0, 0, 1, 2, 2, 2],
         [[PAD, 1, 3], [3, 2, 5], [PAD, 0, 4], [PAD, 20, 21], [21, 22, 23], [23, 24, 25]]),
        (3, [0, 1, 2, 2],
         [[1, 3, 2, 5], [PAD, PAD, 0, 4], [PAD, 20, 21, 22], [22, 23, 24, 25]]),
        (8, [0, 1, 2],
         [[PAD] * 5 + [1, 3, 2, 5], [PAD] * 7 + [0, 4], [PAD] * 3 + [20, 21, 22, 23, 24, 25]]),
    ],
)  # fmt: skip
def test_windows_by_hand(length, users, items):
    out = sequence_windows(_table(), length)
    assert set(out) == {"user_index", "items"}
    assert out["user_index"].dtype == out["items"].dtype == np.int64
    assert out["items"].shape == (len(users), length + 1)
    np.testing.assert_array_equal(out["user_index"], users)
    np.testing.assert_array_equal(out["items"], items)


def test_file_order_of_rows_does_not_matter_but_ties_keep_it():
    shuffled = [ROWS[i] for i in np.random.default_rng(0).permutation(len(ROWS))]
    user0 = [row for row in shuffled if row[0] == 0]
    expected_tie = [row[1] for row in user0 if row[2] == 300]  # whichever comes first in file
    out = sequence_windows(_table(shuffled), 3)
    np.testing.assert_array_equal(out["items"][0], [1, 3, *expected_tie])


def _consecutive_pairs(table):
    """(user, input, target) of each user's chronological sequence, by a plain loop."""
    order = np.lexsort(
        (np.arange(table["timestamp"].size), table["timestamp"], table["user_index"])
    )
    pairs = []
    for a, b in zip(order[:-1], order[1:], strict=True):
        if table["user_index"][a] == table["user_index"][b]:
            pairs.append((table["user_index"][a], table["movie_index"][a], table["movie_index"][b]))
    return sorted(pairs)


@pytest.mark.parametrize("length", [1, 3, 7])
def test_every_item_after_a_users_first_is_a_target_exactly_once(length):
    rng = np.random.default_rng(length)
    n = 400
    table = {
        "user_index": rng.integers(0, 40, n),
        "movie_index": rng.integers(0, 1000, n),
        "timestamp": rng.integers(0, 50, n),  # many ties, broken by file order
    }
    out = sequence_windows(table, length)
    inputs, targets = out["items"][:, :-1], out["items"][:, 1:]
    real = inputs >= 0
    assert (targets[real] >= 0).all()
    # Padding is on the left only: once a row turns real it stays real.
    assert (np.diff(real.astype(int), axis=1) >= 0).all()
    users = np.broadcast_to(out["user_index"][:, None], inputs.shape)
    got = sorted(zip(users[real], inputs[real], targets[real], strict=True))
    assert got == _consecutive_pairs(table)
    # Only each user's oldest window is padded, and users with one interaction have none.
    counts = np.bincount(table["user_index"], minlength=40)
    windows = np.bincount(out["user_index"], minlength=40)
    np.testing.assert_array_equal(windows, np.where(counts >= 2, -(-(counts - 1) // length), 0))
    padded = out["user_index"][~real.all(axis=1)]
    assert np.unique(padded).size == padded.size


def test_bad_arguments():
    with pytest.raises(ValueError, match="length must be a positive integer. Received: length=0"):
        sequence_windows(_table(), 0)
    with pytest.raises(ValueError, match="Received: length=True"):
        sequence_windows(_table(), True)
    table = _table()
    del table["timestamp"]
    with pytest.raises(ValueError, match="needs a timestamp column"):
        sequence_windows(table, 2)

"""sequence_windows: chronological, left-padded next-item windows worked out by hand;
sequence_dataset: causal targets, cloze masking (rates checked over many draws), per-epoch and
per-seed randomness, and in-pipeline negatives that are never the user's items."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import NegativeSampler, SeenItems, sequence_windows
from tfrec.data.sequences import PAD, sequence_dataset

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


# ------------------------------------------------------------------ sequence_dataset

NUM_USERS, NUM_ITEMS, LENGTH = 30, 50, 5


@pytest.fixture(scope="module")
def interactions():
    """30 users with 2..16 distinct items each, in random time order."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(2, 17, NUM_USERS)
    users = np.repeat(np.arange(NUM_USERS), sizes)
    items = np.concatenate([rng.choice(NUM_ITEMS, n, replace=False) for n in sizes])
    return {"user_index": users, "movie_index": items, "timestamp": rng.permutation(users.size)}


@pytest.fixture(scope="module")
def windows(interactions):
    return sequence_windows(interactions, LENGTH)


def epochs(ds, count=1) -> list[dict]:
    """`count` passes over `ds`, each as numpy columns."""
    out = []
    for _ in range(count):
        batches = list(ds)
        out.append({k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]})
    return out


def test_causal_targets_are_next_items_and_none_at_padding(interactions, windows):
    (epoch,) = epochs(sequence_dataset(windows, batch_size=7, seed=0))
    assert set(epoch) == {"row", "user_index", "targets"}
    rows = epoch["row"]
    assert sorted(rows) == list(range(len(windows["user_index"])))  # every window once
    np.testing.assert_array_equal(epoch["user_index"], windows["user_index"][rows])
    items = windows["items"][rows]
    inputs, targets = items[:, :-1], epoch["targets"]
    assert targets.shape == inputs.shape and targets.dtype == np.int64
    assert (targets[inputs < 0] == PAD).all()  # padded inputs: nothing to predict
    np.testing.assert_array_equal(targets[inputs >= 0], items[:, 1:][inputs >= 0])
    # Every item but a user's first is a target once: interactions minus one per user.
    assert (targets >= 0).sum() == interactions["user_index"].size - NUM_USERS


def test_cloze_masks_real_positions_at_the_expected_rates(windows):
    p, final_only = 0.3, 0.1
    many = {key: np.tile(value, (40,) + (1,) * (value.ndim - 1)) for key, value in windows.items()}
    ds = sequence_dataset(many, batch_size=1000, seed=1, cloze_probability=p,
                          final_only_probability=final_only)  # fmt: skip
    draws = epochs(ds, 4)  # 40 copies x 4 epochs: about 10^4 independently masked rows
    masked = np.concatenate([e["masked"] for e in draws])
    targets = np.concatenate([e["targets"] for e in draws])
    sequence = many["items"][:, 1:][np.concatenate([e["row"] for e in draws])]
    real = sequence >= 0
    assert masked.dtype == bool and masked.shape == sequence.shape
    assert not (masked & ~real).any()  # padding is never masked
    assert masked.any(axis=1).all()  # at least one target per row
    np.testing.assert_array_equal(targets, np.where(masked, sequence, PAD))
    # Rows masking only their newest item: drawn so with probability `final_only`, or when the
    # independent draws mask the final position alone or nothing (then the final is forced).
    only_final = masked[:, -1] & (masked.sum(axis=1) == 1)
    chance = final_only + (1 - final_only) * (1 - p) ** (real.sum(axis=1) - 1)
    spread = np.sqrt((chance * (1 - chance)).sum())
    assert abs(only_final.sum() - chance.sum()) < 5 * spread, (only_final.mean(), chance.mean())
    # Any other real position is masked with probability (1 - final_only) * p.
    earlier = real[:, :-1]
    rate = masked[:, :-1][earlier].mean()
    assert abs(rate - (1 - final_only) * p) < 5 * np.sqrt(p * (1 - p) / earlier.sum())


def test_draws_repeat_per_seed_and_change_every_epoch(windows):
    def run(seed, **kwargs):
        ds = sequence_dataset(windows, batch_size=16, seed=seed, cloze_probability=0.4,
                              **kwargs)  # fmt: skip
        return epochs(ds, 2)

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(first[0]["row"], first[1]["row"])  # reshuffled
    by_row = [e["masked"][np.argsort(e["row"])] for e in first]
    assert not np.array_equal(*by_row)  # masks re-drawn
    assert not np.array_equal(first[0]["masked"][np.argsort(first[0]["row"])],
                              other[0]["masked"][np.argsort(other[0]["row"])])  # fmt: skip


def test_negatives_are_never_the_users_items(interactions, windows):
    seen = SeenItems.from_pairs(
        interactions["user_index"], interactions["movie_index"], NUM_USERS, NUM_ITEMS
    )
    sampler = NegativeSampler(seen, seed=0)
    ds = sequence_dataset(windows, batch_size=8, seed=2, cloze_probability=0.3,
                          sampler=sampler, num_negatives=3)  # fmt: skip
    batch = next(iter(ds))
    assert batch["negatives"].shape == (8, LENGTH, 3)
    (epoch,) = epochs(ds)
    negatives = epoch["negatives"]
    assert negatives.shape == (len(windows["user_index"]), LENGTH, 3)
    assert ((negatives >= 0) & (negatives < NUM_ITEMS)).all()
    users = epoch["user_index"]
    assert not seen.contains(users, negatives.reshape(len(users), -1)).any()
    assert np.unique(negatives).size > NUM_ITEMS // 3  # spread over the catalogue


def test_bad_arguments_of_the_dataset(windows):
    with pytest.raises(ValueError, match=r"Received: user_index.shape=\(0,\), items.shape"):
        sequence_dataset({"user_index": np.zeros(0), "items": np.zeros((0, 3))})
    with pytest.raises(ValueError, match=r"items.shape=\(4,\)"):
        sequence_dataset({"user_index": np.zeros(4), "items": np.zeros(4)})
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"Received: cloze_probability={bad}"):
            sequence_dataset(windows, cloze_probability=bad)
    with pytest.raises(ValueError, match="needs a NegativeSampler. Received: sampler=None"):
        sequence_dataset(windows, num_negatives=2)

"""Training batches chosen by the task's objective (tfrec/training/pipelines.py).

Each objective's dataset is checked end to end on a tiny generated MovieLens: how many rows
and labels an epoch has, that pointwise negatives are never seen items, that every training row's
history holds only strictly earlier interactions (recomputed here by hand from timestamps),
and that a sampled negative carries its *own* item's features, not the positive's (a label
leak the pipeline once had). Sequence models get every window of the users' train sequences
once per epoch, with next-item (or cloze) targets and, for BCE / gBCE, negatives drawn
uniformly over the catalogue.
"""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import sequence_windows
from tfrec.data.pipelines import grouped_batch_rows
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import CANDIDATES, build_model, ungroup
from tfrec.tasks import CatalogueSoftmax
from tfrec.training import PIPELINES, training_dataset, training_inputs, training_rows
from tfrec.training.pipelines import steps_per_epoch, window_rows

L = 4


def epoch(ds) -> dict:
    """One pass over `ds` as numpy columns, one row per pair (`tfrec.models.ungroup`)."""
    batches = [ungroup(b) for b in ds]
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


def user_index(data, user_ids):
    position = {u: i for i, u in enumerate(data.user_ids)}
    return np.array([position[u.decode()] for u in user_ids])


@pytest.fixture(scope="module")
def deepfm(tiny_data):
    return build_model("deepfm", tiny_data, embedding_dim=4, dnn_units=(4,), history_length=L)


@pytest.fixture(scope="module")
def pointwise(tiny_data, deepfm):
    ds = training_dataset(deepfm, tiny_data, num_negatives=3, batch_size=40, seed=0)
    return epoch(ds)


def test_pointwise_batches_are_grouped_by_positive(tiny_data, deepfm):
    """40 pairs a batch: 10 positives, each with its 3 negatives (slot 0 the positive); query
    features once per positive, candidate features per slot."""
    batch = next(iter(training_dataset(deepfm, tiny_data, num_negatives=3, batch_size=40)))
    np.testing.assert_array_equal(batch["label"].numpy(), np.tile([1.0, 0.0, 0.0, 0.0], (10, 1)))
    assert batch["user_id"].shape == (10,) and batch[f"user_tower/{RECENT_MOVIES}"].shape == (10, L)
    candidates = batch[CANDIDATES]
    assert candidates["movie_index"].shape == candidates["movie_id"].shape == (10, 4)
    assert candidates["movie_tower/movie_genres"].shape[:2] == (10, 4)
    assert not set(candidates) & set(batch)  # each feature on one side only
    assert steps_per_epoch(deepfm, tiny_data, 3, 40) == -(-len(tiny_data.train["user_index"]) // 10)


def test_objectives_have_pipelines():
    assert sorted(PIPELINES) == [
        ("interactions", "catalogue"),
        ("interactions", "in_batch"),
        ("interactions", "pointwise"),
        ("sequences", "catalogue"),
        ("sequences", "negatives"),
    ]


@pytest.mark.parametrize(
    "name, settings",
    [
        ("deepfm", {"embedding_dim": 4, "dnn_units": (4,), "history_length": L}),
        ("two_tower", {"embedding_dim": 4, "history_length": L}),  # in-batch, mixed negatives
        (
            "sasrec",
            {
                "embedding_dim": 8,
                "num_blocks": 1,
                "history_length": L,
                "loss": "gbce",
                "loss_negatives": 3,
            },
        ),  # sequences, with negatives per position
    ],
)
def test_an_epoch_depends_only_on_seed_and_epoch(tiny_data, name, settings):
    """What resuming needs: epoch e built alone (``epochs=(e, e + 1)``, as a resumed run builds
    it) holds exactly the batches epoch e has in an uninterrupted stream; other epochs and
    seeds differ; no batch spans two epochs."""
    model = build_model(name, tiny_data, **settings)
    options = dict(num_negatives=2, batch_size=50, seed=3)
    steps = steps_per_epoch(model, tiny_data, 2, 50)
    stream = list(training_dataset(model, tiny_data, epochs=(0, 3), **options))
    assert len(stream) == 3 * steps
    alone = list(training_dataset(model, tiny_data, epochs=(1, 2), **options))
    assert len(alone) == steps
    for got, expected in zip(alone, stream[steps : 2 * steps], strict=True):
        assert tf.nest.map_structure(lambda t: t.shape, got) == tf.nest.map_structure(
            lambda t: t.shape, expected
        )
        for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(expected), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())

    def order(batches):  # what an epoch's order shows in: rows, targets or candidates
        pick = "row" if "row" in batches[0] else "targets" if "targets" in batches[0] else None
        return [(b[pick] if pick else b.get(CANDIDATES, b)["movie_index"]).numpy() for b in batches]

    first = np.concatenate([x.ravel() for x in order(stream[:steps])])
    second = np.concatenate([x.ravel() for x in order(stream[steps : 2 * steps])])
    assert not np.array_equal(first, second)  # a new order (and new negatives) every epoch
    other = list(training_dataset(model, tiny_data, epochs=(1, 2), **{**options, "seed": 4}))
    assert not np.array_equal(np.concatenate([x.ravel() for x in order(other)]), second)
    dropped = list(training_dataset(model, tiny_data, epochs=(0, 2), drop_remainder=True,
                                    **options))  # fmt: skip
    full = steps_per_epoch(model, tiny_data, 2, 50, drop_remainder=True)
    size = grouped_batch_rows(50, 2) if model.task.objective == "pointwise" else 50
    assert len(dropped) == 2 * full and {len(x) for x in order(dropped)} == {size}


def test_pointwise_epoch_has_every_positive_once_and_three_negatives_each(tiny_data, pointwise):
    train = tiny_data.train
    labels = pointwise["label"]
    assert labels.size == 4 * len(train["user_index"])
    assert labels.mean() == 0.25  # one positive and three negatives per training row
    positive = labels == 1.0
    got = sorted(
        zip(pointwise["user_id"][positive], pointwise["movie_index"][positive], strict=True)
    )
    expected = sorted(zip(train["user_id"].astype(bytes), train["movie_index"], strict=True))
    assert got == expected
    users = user_index(tiny_data, pointwise["user_id"])
    seen = tiny_data.seen("train").contains(users, pointwise["movie_index"])
    assert seen[positive].all() and not seen[~positive].any()  # negatives are never seen


def test_training_histories_are_strictly_earlier(tiny_data, deepfm, pointwise):
    train = tiny_data.train
    assert len(set(zip(train["user_id"], train["movie_id"], strict=True))) == len(train["user_id"])
    row_of = {
        (u, m): r for r, (u, m) in enumerate(zip(train["user_id"], train["movie_id"], strict=True))
    }
    vocabulary = np.asarray(["<oov>"] + deepfm.query_tower.encoder(RECENT_MOVIES).vocabulary)
    ids = pointwise[f"user_tower/{RECENT_MOVIES}"]
    history = np.where(ids >= 0, vocabulary[np.maximum(ids, 0)], "")
    time = train["timestamp"]
    by_user = {}
    for row, (user, movie, label) in enumerate(
        zip(pointwise["user_id"], pointwise["movie_index"], pointwise["label"], strict=True)
    ):
        user = user.decode()
        if label == 0:
            continue
        r = row_of[(user, str(tiny_data.item_ids[movie]))]
        # By hand: the same user's rows before r in (timestamp, table order), oldest first.
        mine = [j for j in np.flatnonzero(train["user_id"] == user) if (time[j], j) < (time[r], r)]
        earlier = [train["movie_id"][j] for j in sorted(mine, key=lambda j: (time[j], j))][-L:]
        assert list(history[row]) == [""] * (L - len(earlier)) + earlier, (user, r)
        by_user.setdefault(user, set()).add(tuple(history[row]))
    assert any(len(h) > 1 for h in by_user.values())
    # A sampled negative keeps its positive row's history (the user's past at that time).
    for row in np.flatnonzero(pointwise["label"] == 0):
        assert tuple(history[row]) in by_user[pointwise["user_id"][row].decode()]


@pytest.mark.parametrize("name", ["deepfm", "wide_deep"])
def test_negative_rows_carry_their_own_items_features(tiny_data, name):
    """Label-leak regression: candidate features are per item, never copied from the positive."""
    model = build_model(name, tiny_data, embedding_dim=4, dnn_units=(4,), history_length=L)
    rows = epoch(training_dataset(model, tiny_data, num_negatives=2, batch_size=64, seed=1))
    items, users = rows["movie_index"], user_index(tiny_data, rows["user_id"])
    raw_items = {k: tf.constant(v) for k, v in tiny_data.items.items()}
    expected = model.candidate_tower.preprocess(raw_items)
    for key, value in expected.items():
        np.testing.assert_array_equal(rows[key], value.numpy()[items], err_msg=key)
    np.testing.assert_array_equal(rows["movie_id"], tiny_data.item_ids[items].astype(bytes))
    for key in getattr(model, "raw_candidate_keys", ()):
        np.testing.assert_array_equal(
            rows[key].astype(str), tiny_data.items[key][items].astype(str)
        )
    # Query-side features are the row's user's.
    for encoder in model.query_tower.fields:
        if encoder.key != RECENT_MOVIES:
            value = encoder.preprocess({encoder.key: tf.constant(tiny_data.users[encoder.key])})
            key = model.query_tower.preprocessed_key(encoder)
            np.testing.assert_array_equal(rows[key], value.numpy()[users], err_msg=key)
    assert (rows["label"] == 0).sum() == 2 * (rows["label"] == 1).sum()


def test_in_batch_with_and_without_mixed_negatives(tiny_data):
    rows = len(tiny_data.train["user_index"])
    mixed = build_model("two_tower", tiny_data, embedding_dim=4, history_length=L)
    assert mixed.task.mixed_negatives
    with_negatives = epoch(training_dataset(mixed, tiny_data, num_negatives=2, batch_size=30))
    assert with_negatives["label"].size == 3 * rows
    assert with_negatives["label"].mean() == pytest.approx(1 / 3)
    alone = epoch(training_dataset(mixed, tiny_data, num_negatives=0, batch_size=30))
    assert "label" not in alone and alone["movie_index"].size == rows
    plain = build_model("two_tower", tiny_data, embedding_dim=4, history_length=L,
                        mixed_negatives=False)  # fmt: skip
    positives = epoch(training_dataset(plain, tiny_data, num_negatives=4, batch_size=30))
    assert "label" not in positives
    got = sorted(zip(positives["user_id"], positives["movie_index"], strict=True))
    assert got == sorted(
        zip(tiny_data.train["user_id"].astype(bytes), tiny_data.train["movie_index"], strict=True)
    )
    assert f"user_tower/{RECENT_MOVIES}" in positives


def test_catalogue_objective_sets_the_models_catalogue(tiny_data):
    task = CatalogueSoftmax(tiny_data.num_items, num_sampled=5, sampling="unigram")
    model = build_model("gmf", tiny_data, embedding_dim=4, history_length=0, task=task)
    ds = training_dataset(model, tiny_data, batch_size=64)
    rows = epoch(ds)
    assert "label" not in rows
    assert sorted(rows["movie_index"]) == sorted(tiny_data.train["movie_index"])
    inputs = training_inputs(model, tiny_data)
    catalogue = model._catalogue
    assert set(catalogue) == set(inputs.per_item)
    np.testing.assert_array_equal(catalogue["movie_id"], tiny_data.item_ids.astype(bytes))
    counts = np.maximum(np.bincount(tiny_data.train["movie_index"], minlength=80), 1)
    np.testing.assert_allclose(task.log_probability, np.log(counts / counts.sum()), rtol=1e-5)
    batch = next(iter(ds))
    assert np.isfinite(float(model.compute_loss(batch, training=True)))


def test_training_rows_carry_histories_only_when_the_model_has_one(tiny_data):
    assert RECENT_MOVIES not in training_rows(tiny_data, 0)
    rows = training_rows(tiny_data, 3)
    assert rows[RECENT_MOVIES].shape == (len(tiny_data.train["user_index"]), 3)
    no_history = build_model("gmf", tiny_data, embedding_dim=4, history_length=0)
    assert training_inputs(no_history, tiny_data).per_row == {}


def test_bad_settings_are_clear_errors(tiny_data, deepfm):
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        training_dataset(deepfm, tiny_data, batch_size=0)
    with pytest.raises(ValueError, match="Received: num_negatives=-1"):
        training_dataset(deepfm, tiny_data, num_negatives=-1)
    with pytest.raises(ValueError, match="needs sampled negatives. Received: num_negatives=0"):
        training_dataset(deepfm, tiny_data, num_negatives=0)

    class Pairwise(tf.keras.layers.Layer):
        objective = "pairwise"

    odd = build_model("gmf", tiny_data, embedding_dim=4, history_length=0, task=Pairwise())
    with pytest.raises(ValueError, match="reading 'interactions' with a task of objective 'pair"):
        training_dataset(odd, tiny_data)


# ------------------------------------------------------------------ sequences

SEQUENCE_SMALL = {
    "sasrec": {"num_blocks": 1, "num_heads": 1},
    "gru4rec": {"gru_units": (4,)},
    "bert4rec": {"num_blocks": 1, "num_heads": 1, "mask_probability": 0.3},
}


def sequence_model(name, data, **overrides):
    return build_model(name, data, embedding_dim=4, history_length=L, **SEQUENCE_SMALL[name],
                       **overrides)  # fmt: skip


def movie_ids(model, ids):
    """Preprocessed item ids back to movie ids ("" at padding), via the model's vocabulary."""
    vocabulary = np.asarray(["<oov>"] + model.candidate_tower.encoder("movie_id").vocabulary)
    return np.where(ids >= 0, vocabulary[np.maximum(ids, 0)], "")


def windows_by_hand(data, cloze):
    """``{(user_id, inputs as movie ids): targets as movie ids ("" for none)}`` of every window."""
    windows = sequence_windows(data.train, L)
    ids = np.where(windows["items"] >= 0, data.item_ids[np.maximum(windows["items"], 0)], "")
    inputs, following = (ids[:, 1:], ids[:, 1:]) if cloze else (ids[:, :-1], ids[:, 1:])
    targets = np.where(inputs != "", following, "")
    users = data.user_ids[windows["user_index"]]
    return {(u, tuple(i)): t for u, i, t in zip(users, inputs, targets, strict=True)}


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])
def test_sequence_models_get_every_window_once(tiny_data, name):
    model = sequence_model(name, tiny_data)
    assert model._catalogue is None
    rows = epoch(training_dataset(model, tiny_data, batch_size=16, seed=0))
    key = f"user_tower/{RECENT_MOVIES}"
    expected = {"user_id", key, "targets"} | ({"masked"} if model.cloze else set())
    assert set(rows) == expected
    # The pipeline handed the model every item's candidate features (catalogue-index order).
    inputs = training_inputs(model, tiny_data)
    assert set(model._catalogue) == set(inputs.per_item)
    np.testing.assert_array_equal(model._catalogue["movie_id"], tiny_data.item_ids.astype(bytes))
    np.testing.assert_array_equal(model._catalogue["movie_tower/movie_id"],
                                  inputs.per_item["movie_tower/movie_id"])  # fmt: skip
    # Every window exactly once, with its own user, inputs and targets.
    by_hand = windows_by_hand(tiny_data, model.cloze)
    histories = movie_ids(model, rows[key])
    users = rows["user_id"].astype(str)
    got = [(u, tuple(h)) for u, h in zip(users, histories, strict=True)]
    assert sorted(got) == sorted(by_hand)
    targets = np.where(rows["targets"] >= 0, tiny_data.item_ids[np.maximum(rows["targets"], 0)], "")
    expected_targets = np.array([by_hand[g] for g in got])
    if model.cloze:  # targets are exactly the masked real items
        masked = rows["masked"]
        assert not (masked & (histories == "")).any() and masked.any(axis=1).all()
        np.testing.assert_array_equal(targets, np.where(masked, expected_targets, ""))
    else:
        np.testing.assert_array_equal(targets, expected_targets)


@pytest.mark.parametrize("cloze", [False, True])
def test_window_inputs_are_preprocessed_per_row(tiny_data, cloze):
    model = sequence_model("bert4rec" if cloze else "sasrec", tiny_data)
    windows, rows = window_rows(tiny_data, model)
    items = windows["items"][:, 1:] if cloze else windows["items"][:, :-1]
    np.testing.assert_array_equal(
        rows[RECENT_MOVIES], np.where(items >= 0, tiny_data.item_ids[np.maximum(items, 0)], "")
    )
    inputs = training_inputs(model, tiny_data)
    preprocessed = inputs.per_row[f"user_tower/{RECENT_MOVIES}"].numpy()
    assert preprocessed.shape == (len(windows["user_index"]), L)
    np.testing.assert_array_equal(movie_ids(model, preprocessed), rows[RECENT_MOVIES])


def drawn_negatives(data, loss, epochs):
    """A SASRec with `loss` and 3 negatives per target, and its negatives over `epochs` epochs
    as ``(users [R], negatives [R, 3 * positions])`` (one row per window)."""
    model = sequence_model("sasrec", data, loss=loss, loss_negatives=3)
    rows = epoch(training_dataset(model, data, batch_size=16, seed=0, epochs=(0, epochs)))
    assert rows["negatives"].shape == (*rows["targets"].shape, 3)
    users = user_index(data, rows["user_id"])
    flat = rows["negatives"].reshape(len(users), -1)
    assert ((flat >= 0) & (flat < data.num_items)).all()
    return model, users, flat


def test_bce_draws_negatives_the_user_never_had_as_the_original_sasrec(tiny_data):
    model, users, flat = drawn_negatives(tiny_data, "bce", epochs=5)
    assert model.task.exclude_seen
    seen = tiny_data.seen("train")
    assert not seen.contains(np.repeat(users, flat.shape[1]), flat.ravel()).any()


def test_gbce_draws_negatives_uniformly_over_the_whole_catalogue(tiny_data):
    """As gSASRec draws them: a user's own train items are drawn at their catalogue share. (When
    they were excluded, the held-out items were negatives at every position and the model
    learnt each user's complement: gBCE-256 fell below popularity.)"""
    model, users, flat = drawn_negatives(tiny_data, "gbce", epochs=20)
    assert not model.task.exclude_seen
    seen = tiny_data.seen("train")
    own = seen.contains(np.repeat(users, flat.shape[1]), flat.ravel())
    share = np.repeat(seen.counts(users) / tiny_data.num_items, flat.shape[1])
    spread = np.sqrt((share * (1 - share)).sum())  # binomial sd of the count of own draws
    assert abs(own.sum() - share.sum()) < 4 * spread and own.sum() > 0
    counts = np.bincount(flat.ravel(), minlength=tiny_data.num_items)
    expected = flat.size / tiny_data.num_items
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # every item, evenly
    assert model._catalogue is not None


def test_sampled_softmax_gets_the_training_popularity(tiny_data):
    model = sequence_model("gru4rec", tiny_data, loss="sampled_softmax", loss_negatives=4)
    batch = next(iter(training_dataset(model, tiny_data, batch_size=16)))
    assert "negatives" not in batch
    counts = np.maximum(tiny_data.item_counts("train"), 1)
    np.testing.assert_allclose(model.task.log_probability, np.log(counts / counts.sum()),
                               rtol=1e-5)  # fmt: skip
    assert np.isfinite(float(model.compute_loss(batch, training=True)))

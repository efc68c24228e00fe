"""Warm start (tfrec/training/warm_start.py): every model keeps its known rows, gains new ones.

The previous model of each test is built on the earliest half of a generated MovieLens (its
own chronological split), then every one of its variables is overwritten with random values,
so a copied row can never be mistaken for a freshly initialised one. The new data is the whole
set, with users and movies the previous model never saw. Before any training, the warm model
must score every (user, movie) pair the previous model knew exactly as the previous model does,
keep each known id's rows (embeddings and first-order weights) bit for bit, and give the new ids
rows of their own that training can use.
"""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData, chronological_split, recent_history, time_slice
from tfrec.evaluation import score_fn
from tfrec.features.encoders import CategoricalEncoder
from tfrec.features.inputs import ModelInputs, feature_store
from tfrec.features.sequence import SequenceEncoder
from tfrec.models import available_models, build_model
from tfrec.training import (
    ReplayData,
    WarmStartError,
    fit,
    merge_configs,
    replay_data,
    warm_start,
)


@pytest.fixture(scope="module")
def datasets(tiny_movielens):
    """(previous data: the earliest half, new data: everything), both split by time."""
    past = time_slice(tiny_movielens, 0.5)
    previous = SplitData.from_movielens(past, chronological_split(past.ratings))
    new = SplitData.from_movielens(tiny_movielens, chronological_split(tiny_movielens.ratings))
    return previous, new


def randomized(name, data, hparams, seed=0):
    """Model `name` built on `data` with every variable set to (small) random values."""
    model = build_model(name, data, **hparams)
    inputs = ModelInputs.build(model, data, "test")
    model(inputs.gather(tf.constant([0]), tf.constant([0])), training=False)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        values = 0.3 * rng.normal(size=variable.shape)
        variable.assign(values.astype(variable.dtype.as_numpy_dtype))
    return model


def same_ids(previous, model, features) -> np.ndarray:
    """Rows whose every feature maps to the same ids in both models: the rows whose values
    the previous model knew (a value it mapped to its out-of-vocabulary row may have an own
    row now, e.g. a title word seen twice only in the new data)."""
    same = np.ones(len(features["user_id"]), bool)
    for old_tower, new_tower in ((previous.query_tower, model.query_tower),
                                 (previous.candidate_tower, model.candidate_tower)):  # fmt: skip
        for old, new in zip(old_tower.encoders, new_tower.encoders, strict=True):
            a, b = old.preprocess(features).numpy(), new.preprocess(features).numpy()
            same &= (a == b).reshape(len(same), -1).all(axis=1)
    return same


def vocabulary_encoders(model):
    return [
        e
        for tower in (model.query_tower, model.candidate_tower)
        for e in tower.encoders
        if isinstance(e, CategoricalEncoder | SequenceEncoder) and e.vocabulary is not None
    ]


# ---------------------------------------------------------------------- configurations


def encoder(name, cls, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


def test_merge_extends_vocabularies_old_first_and_keeps_numeric_statistics():
    old = {
        "encoders": [
            encoder("user_id", "CategoricalEncoder", vocabulary=["7", "3"], embedding_dim=4),
            encoder("year", "NumericEncoder", boundaries=[1980.0], mean=1985.0),
            encoder("zip", "CategoricalEncoder", vocabulary=None, hash_bins=64),
        ],
        "num_items": 10,
    }
    new = {
        "encoders": [
            encoder("user_id", "CategoricalEncoder", vocabulary=["9", "3", "1"], embedding_dim=4),
            encoder("year", "NumericEncoder", boundaries=[1990.0], mean=1991.0),
            encoder("zip", "CategoricalEncoder", vocabulary=None, hash_bins=64),
        ],
        "num_items": 12,
    }
    vocabularies = {}
    merged = merge_configs(old, new, "", vocabularies)
    assert merged["encoders"][0]["config"]["vocabulary"] == ["7", "3", "9", "1"]
    assert merged["encoders"][1] == old["encoders"][1]  # boundaries and mean of the old run
    new["encoders"][1]["config"]["embedding_dim"] = 8
    again = merge_configs(old, new)["encoders"][1]["config"]
    assert (again["embedding_dim"], again["mean"]) == (8, 1985.0)  # only the statistics kept
    assert merged["encoders"][2] == new["encoders"][2]
    assert merged["num_items"] == 12  # data-dependent settings come from the new data
    assert vocabularies == {"user_id": (2, 2)}


def test_merge_refuses_a_different_structure():
    old = {"encoders": [encoder("a", "CategoricalEncoder", vocabulary=["1"])]}
    for new in (
        {"encoders": []},
        {"encoders": [encoder("a", "NumericEncoder", mean=0.0)]},
        {"encoders": [encoder("a", "CategoricalEncoder", vocabulary=None, hash_bins=8)]},
    ):
        with pytest.raises(WarmStartError, match="/encoders"):
            merge_configs(old, new)


# ---------------------------------------------------------------------- every model


@pytest.mark.parametrize("name", available_models())
def test_known_rows_kept_new_rows_usable(name, datasets, small):
    previous_data, data = datasets
    previous = randomized(name, previous_data, small(name))
    warm = warm_start(previous, data, small(name))
    model = warm.model
    assert warm.new_ids > 0 and warm.optimizer is None  # never trained: nothing to keep
    assert set(warm.variables.values()) <= {"copied", "rows", "rebuilt"}
    assert "rows" in warm.variables.values()

    # Known ids keep their index and their rows; new ids get rows of their own.
    for old, new in zip(vocabulary_encoders(previous), vocabulary_encoders(model), strict=True):
        assert new.vocabulary[: len(old.vocabulary)] == old.vocabulary
        tables = [(old.embedding, new.embedding)]
        if isinstance(new, CategoricalEncoder):
            tables.append((old.weight, new.weight))  # first-order weights too
        for old_table, new_table in tables:
            before, after = old_table.embeddings.numpy(), new_table.embeddings.numpy()
            np.testing.assert_array_equal(after[: len(before)], before)
            assert after.shape[0] == len(new.vocabulary) + 1
        added = new.vocabulary[len(old.vocabulary) :]
        if added:
            ids = new.lookup(tf.constant(added)).numpy()
            np.testing.assert_array_equal(
                ids, np.arange(len(old.vocabulary), len(new.vocabulary)) + 1
            )
    for old_var, new_var in zip(previous.weights, model.weights, strict=True):
        if warm.variables[new_var.name] == "copied":
            np.testing.assert_array_equal(new_var.numpy(), old_var.numpy())

    # Before training, the warm model is the previous model on everything it knew.
    store = feature_store(previous_data, "test", previous.history_length)
    users = np.repeat(previous_data.user_ids, 10)
    movies = np.tile(previous_data.item_ids[:10], previous_data.num_users)
    pairs = store.join({"user_id": tf.constant(users), "movie_id": tf.constant(movies)})
    known = same_ids(previous, model, pairs)
    assert known.mean() > 0.3, known.mean()
    np.testing.assert_allclose(
        model(pairs, training=False).numpy()[known],
        previous(pairs, training=False).numpy()[known],
        rtol=1e-5,
        atol=1e-5,
    )

    # New users and movies are scored through their own rows.
    new_users = np.flatnonzero(~np.isin(data.user_ids, previous_data.user_ids))
    new_movies = np.flatnonzero(~np.isin(data.item_ids, previous_data.item_ids))
    assert new_users.size and new_movies.size
    scores = score_fn(model, data, "test")(new_users, np.tile(new_movies, (new_users.size, 1)))
    assert np.isfinite(scores).all()


def test_warm_model_trains_with_the_previous_optimizer_state(datasets, small):
    previous_data, data = datasets
    previous = build_model("deepfm", previous_data, **small("deepfm"))
    fit(previous, previous_data, epochs=1, batch_size=64, num_negatives=1, verbose=0)
    steps = int(previous.optimizer.iterations.numpy())
    warm = warm_start(previous, data, small("deepfm"), learning_rate=5e-3)
    assert warm.optimizer_state == f"kept ({steps} steps)"
    assert int(warm.optimizer.iterations.numpy()) == steps
    assert float(warm.optimizer.learning_rate.numpy()) == pytest.approx(5e-3)
    old_table = previous.query_tower.encoder("user_id").embedding.embeddings
    new_table = warm.model.query_tower.encoder("user_id").embedding.embeddings
    rows = old_table.shape[0]
    for old_slot, new_slot in zip(
        (v for v in previous.optimizer.variables if v.shape == old_table.shape),
        (v for v in warm.optimizer.variables if v.shape == new_table.shape),
        strict=True,
    ):  # Adam's m and v: known rows copied, new rows start at zero
        np.testing.assert_array_equal(new_slot.numpy()[:rows], old_slot.numpy())
        assert not new_slot.numpy()[rows:].any()
    history = fit(warm.model, data, epochs=1, batch_size=64, num_negatives=1, verbose=0,
                  optimizer=warm.optimizer)  # fmt: skip
    assert np.isfinite(history.history["loss"]).all()
    assert int(warm.optimizer.iterations.numpy()) > steps
    reset = warm_start(previous, data, small("deepfm"), keep_optimizer=False)
    assert reset.optimizer is None and reset.optimizer_state.startswith("reset")


def test_other_hyperparameters_are_refused(datasets, small):
    previous_data, data = datasets
    previous = randomized("fm", previous_data, small("fm"))
    with pytest.raises(WarmStartError, match="hyperparameters"):
        warm_start(previous, data, {**small("fm"), "embedding_dim": 8})


# ---------------------------------------------------------------------- replay


def test_replay_trains_on_new_rows_and_a_share_of_old_ones(datasets, small):
    previous_data, data = datasets
    model = build_model("deepfm", data, **small("deepfm"))
    train = data.split.train
    keys = np.char.add(train["user_id"], "|" + train["movie_id"])
    old_keys = np.char.add(previous_data.train["user_id"], "|" + previous_data.train["movie_id"])
    old = np.isin(keys, old_keys)
    assert old.any() and (~old).any()

    none = replay_data(data, previous_data.train, 0.0, model)
    np.testing.assert_array_equal(none.rows, np.flatnonzero(~old))
    everything = replay_data(data, previous_data.train, 1.0, model)
    np.testing.assert_array_equal(everything.rows, np.arange(old.size))
    half = replay_data(data, previous_data.train, 0.5, model, seed=3)
    replayed = np.intersect1d(half.rows, np.flatnonzero(old))
    assert 0 < replayed.size < old.sum()
    assert np.isin(np.flatnonzero(~old), half.rows).all()

    # What is known stays the whole train split; histories are computed on all of it.
    assert isinstance(half, ReplayData)
    assert half.seen("valid").counts(np.arange(data.num_users)).sum() == old.size
    full_history = recent_history(train, length=model.history_length)
    np.testing.assert_array_equal(half.train["recent_movie_ids"], full_history[half.rows])
    history = fit(model, half, epochs=1, batch_size=64, num_negatives=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_replay_refuses_bad_shares_and_sequence_models(datasets, small):
    previous_data, data = datasets
    model = build_model("deepfm", data, **small("deepfm"))
    for share in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="share"):
            replay_data(data, previous_data.train, share, model)
    sasrec = build_model("sasrec", data, **small("sasrec"))
    with pytest.raises(ValueError, match="whole user sequences"):
        replay_data(data, previous_data.train, 0.2, sasrec)

"""Session fixtures for tfrec.serving: a tiny MovieLens-like data set, a DeepFM fit for one
epoch, one export shared by every test, and an "average_user" serving module.

Ids follow MovieLens-100k ("1".."200" users, "1".."320" movies) so the README's examples
(user "196", movie "242", ...) address real rows. User "heavy" has seen every movie but the
last three, to test what `recommend` returns when fewer than k movies are left.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before tf.keras is touched)
import types

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.store import FeatureStore
from tfrec.models import build_model
from tfrec.serving import LocalServing, ServingModule, export_model
from tfrec.towers import RECENT_MOVIES

NUM_USERS, NUM_MOVIES, HISTORY = 200, 320, 5
HEAVY_USER = "heavy"
_WORDS = np.array(["star", "toy", "story", "wars", "alien", "heat", "love", "night", "day", "the"])


def _tables(rng):
    users = {
        "user_id": np.array([str(i) for i in range(1, NUM_USERS + 1)] + [HEAVY_USER]),
        "user_gender": rng.random(NUM_USERS + 1) < 0.5,
        "bucketized_user_age": rng.choice(
            [1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0], NUM_USERS + 1
        ).astype(np.float32),
        "user_occupation_text": rng.choice(
            ["writer", "student", "engineer", "artist"], NUM_USERS + 1
        ),
        "user_zip_code": rng.integers(10000, 99999, NUM_USERS + 1).astype(str),
    }
    years = rng.integers(1950, 2000, NUM_MOVIES).astype(str)
    words = rng.choice(_WORDS, (NUM_MOVIES, 2))
    titles = np.char.add(np.char.add(words[:, 0], " "), words[:, 1])
    movies = {
        "movie_id": np.arange(1, NUM_MOVIES + 1).astype(str),
        "movie_title": np.char.add(np.char.add(titles, " ("), np.char.add(years, ")")),
        "movie_genres": np.where(
            rng.random((NUM_MOVIES, 3)) < 0.6, rng.integers(0, 19, (NUM_MOVIES, 3)), -1
        ).astype(np.int64),
    }
    return users, movies


def _seen(rng, users, movies):
    """Unique positive (user, movie) pairs: ~12 per regular user, all but 3 for the heavy user."""
    user_rows = rng.integers(0, NUM_USERS, 2400)
    movie_rows = rng.integers(0, NUM_MOVIES, 2400)
    heavy_movies = np.arange(NUM_MOVIES - 3)
    user_rows = np.concatenate([user_rows, np.full(len(heavy_movies), NUM_USERS)])
    movie_rows = np.concatenate([movie_rows, heavy_movies])
    keys = np.unique(user_rows * NUM_MOVIES + movie_rows)
    return keys // NUM_MOVIES, keys % NUM_MOVIES


def _history(user_rows, movie_rows, movie_ids):
    """Each user's first HISTORY seen movies, "" padded: ``[num_users, HISTORY]``."""
    first = np.searchsorted(user_rows, user_rows)
    rank = np.arange(len(user_rows)) - first
    keep = rank < HISTORY
    history = np.full((NUM_USERS + 1, HISTORY), "", dtype=object)
    history[user_rows[keep], rank[keep]] = movie_ids[movie_rows[keep]]
    return history.astype(str)


@pytest.fixture(scope="session")
def movielens():
    """Users, movies and history tables, the seen pairs, and the joined training table."""
    rng = np.random.default_rng(7)
    users, movies = _tables(rng)
    user_rows, movie_rows = _seen(rng, users, movies)
    history = {
        "user_id": users["user_id"],
        RECENT_MOVIES: _history(user_rows, movie_rows, movies["movie_id"]),
    }
    negatives = (
        rng.integers(0, NUM_USERS, len(user_rows)),
        rng.integers(0, NUM_MOVIES, len(user_rows)),
    )
    rows_u = np.concatenate([user_rows, negatives[0]])
    rows_m = np.concatenate([movie_rows, negatives[1]])
    train = {key: value[rows_u] for key, value in users.items()}
    train.update({key: value[rows_m] for key, value in movies.items()})
    train[RECENT_MOVIES] = history[RECENT_MOVIES][rows_u]
    train["label"] = np.concatenate([np.ones(len(user_rows)), np.zeros(len(user_rows))]).astype(
        np.float32
    )
    seen = (users["user_id"][user_rows], movies["movie_id"][movie_rows])
    return types.SimpleNamespace(
        users=users,
        movies=movies,
        history=history,
        train=train,
        seen=seen,
        num_movies=NUM_MOVIES,
        heavy_user=HEAVY_USER,
    )


@pytest.fixture(scope="session")
def model(movielens):
    """A small DeepFM fit for one epoch on the training table."""
    model = build_model("deepfm", movielens.train, embedding_dim=8, dnn_units=(16,))
    model.compile(tf.keras.optimizers.Adam(1e-2))
    data = tf.data.Dataset.from_tensor_slices(movielens.train).shuffle(8192, seed=0).batch(1024)
    model.fit(data, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def store(movielens):
    return FeatureStore(movielens.users, movielens.movies, movielens.history)


@pytest.fixture(scope="session")
def exports(tmp_path_factory, model, store, movielens):
    """One export (cold start "popular") into a base dir that already holds deepfm version 3,
    a stale temp dir and another model: the export must become deepfm/4."""
    base = tmp_path_factory.mktemp("saved_models")
    (base / "deepfm" / "3").mkdir(parents=True)
    (base / "deepfm" / ".tmp-stale").mkdir()
    (base / "other" / "1").mkdir(parents=True)
    path = export_model(model, store, movielens.seen, base_dir=base, name="deepfm")
    return types.SimpleNamespace(base=base, popular=path)


@pytest.fixture(scope="session")
def served(exports):
    """The export loaded with plain tf.saved_model.load, behind LocalServing."""
    return LocalServing(exports.popular)


@pytest.fixture(scope="session")
def average_module(model, store, movielens):
    """An unsaved ServingModule with cold start "average_user" (its tf.functions are the
    exported signatures' code; saving is covered by the "popular" export)."""
    return ServingModule(model, store, movielens.seen, cold_start="average_user")

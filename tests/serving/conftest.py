"""Session fixtures for tfrec.serving: a small generated MovieLens split, a DeepFM fit for one
epoch, one export shared by every test, and an "average_user" serving module.

Ids follow MovieLens-100k ("1".."200" users, "1".."320" movies) so the README's examples
(user "196", movie "242", ...) address real rows. User "heavy" has rated every movie but the
last three, to test what `recommend` returns when fewer than k movies are left.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before tf.keras is touched)
import types

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.data.movielens import from_tables
from tfrec.data.parsers import Tables
from tfrec.data.synthetic import synthetic_tables
from tfrec.features.inputs import feature_store
from tfrec.models import build_model
from tfrec.serving import LocalServing, export_model, recommender_module
from tfrec.training import training_dataset

NUM_USERS, NUM_MOVIES, HISTORY = 200, 320, 5
HEAVY_USER = "heavy"


def _with_heavy_user(tables: Tables) -> Tables:
    """`tables` plus user "heavy", who rated movies "1".."317" (all but the last three)."""
    users = {k: np.concatenate([v, v[:1]]) for k, v in tables.users.items()}
    users["user_id"] = np.append(tables.users["user_id"], HEAVY_USER)
    movies = tables.movies["movie_id"][: NUM_MOVIES - 3]
    heavy = {
        "user_id": np.full(movies.size, HEAVY_USER),
        "movie_id": movies,
        "user_rating": np.full(movies.size, 4.0, np.float32),
        "timestamp": 880_000_000 + np.arange(movies.size, dtype=np.int64) * 60,
    }
    ratings = {k: np.concatenate([v, heavy[k]]) for k, v in tables.ratings.items()}
    return Tables(ratings, tables.movies, users)


@pytest.fixture(scope="session")
def movielens():
    """The split, the pairs an ``as_of="all"`` export knows (never recommended back), the
    movies table and the heavy user."""
    tables = synthetic_tables(
        num_users=NUM_USERS, num_movies=NUM_MOVIES, ratings_per_user=12, seed=7
    )
    data = SplitData.from_movielens(from_tables(_with_heavy_user(tables), "100k", "synthetic"))
    known = data.known("all")
    return types.SimpleNamespace(
        data=data,
        seen=(known["user_id"], known["movie_id"]),
        movies=data.items,
        num_movies=NUM_MOVIES,
        heavy_user=HEAVY_USER,
    )


@pytest.fixture(scope="session")
def data(movielens):
    return movielens.data


@pytest.fixture(scope="session")
def model(data):
    """A small DeepFM (histories of 5) fit for one epoch on the library's training pipeline.

    Eagerly: on seven batches that is several times faster than tracing the train step
    (`tfrec.training.fit` itself is tested with the models).
    """
    model = build_model("deepfm", data, embedding_dim=8, dnn_units=(16,), history_length=HISTORY)
    model.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)
    batches = training_dataset(
        model, data, num_negatives=1, batch_size=1024, distribution="uniform", seed=0
    )
    model.fit(batches, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def store(model, data):
    """The FeatureStore an ``as_of="all"`` export scores with."""
    return feature_store(data, "all", model.history_length)


@pytest.fixture(scope="session")
def exports(tmp_path_factory, model, data):
    """One export (cold start "popular") into a base dir that already holds deepfm version 3,
    a stale temp dir and another model: the export must become deepfm/4."""
    base = tmp_path_factory.mktemp("saved_models")
    (base / "deepfm" / "3").mkdir(parents=True)
    (base / "deepfm" / ".tmp-stale").mkdir()
    (base / "other" / "1").mkdir(parents=True)
    path = export_model(model, data, as_of="all", base_dir=base, name="deepfm")
    return types.SimpleNamespace(base=base, popular=path)


@pytest.fixture(scope="session")
def served(exports):
    """The export loaded with plain tf.saved_model.load, behind LocalServing."""
    return LocalServing(exports.popular)


@pytest.fixture(scope="session")
def average_module(model, data):
    """An unsaved RecommenderModule with cold start "average_user" (its tf.functions are the
    exported signatures' code; saving is covered by the "popular" export)."""
    return recommender_module(model, data, as_of="all", cold_start="average_user")

"""Shared fixtures for the model tests: a tiny synthetic joined table and small towers.

The table has every MovieLens feature name the default towers read, and a label that
depends only on ``user_id % 3 == movie_id % 3``: a signal every model here can learn from
ids alone, so a short training run must beat random on held-out rows.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.columns import Categorical, MultiCategorical
from tfrec.features.towers import RECENT_MOVIES, build_tower

NUM_USERS, NUM_MOVIES = 40, 60


def synthetic_table(n: int = 2400, seed: int = 0) -> dict:
    """A joined training table with MovieLens feature names and a learnable label."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, NUM_USERS, n)
    movies = rng.integers(0, NUM_MOVIES, n)
    genres = np.where(rng.random((n, 3)) < 0.5, rng.integers(0, 18, (n, 3)), -1)
    history = np.where(rng.random((n, 4)) < 0.7, rng.integers(0, NUM_MOVIES, (n, 4)), -1)
    titles = np.array(["Toy Story (1995)", "Heat (1995)", "Alien (1979)", "Nope"])
    return {
        "user_id": users.astype(str),
        "movie_id": movies.astype(str),
        "user_gender": rng.random(n) < 0.5,
        "bucketized_user_age": rng.choice([18.0, 25.0, 35.0], n),
        "user_occupation_text": rng.choice(["artist", "doctor", "writer"], n),
        "user_zip_code": rng.choice(["12345", "55555", "90210"], n),
        "movie_genres": genres,
        "movie_title": titles[rng.integers(0, len(titles), n)],
        RECENT_MOVIES: np.where(history >= 0, history.astype(str), ""),
        "label": (users % 3 == movies % 3).astype(np.float32),
    }


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula; ties count one half."""
    labels = np.asarray(labels) > 0.5
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    pos, neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def randomize(model, seed=0, scale=1.0):
    """Random normal weights in every layer but the task (BatchNorm variances kept positive)."""
    rng = np.random.default_rng(seed)
    task = {id(v) for v in getattr(model, "task", tf.keras.layers.Layer()).variables}
    for variable in model.variables:
        if id(variable) in task:
            continue
        values = scale * rng.normal(size=variable.shape)
        if "moving_variance" in variable.name:
            values = np.abs(values) + 0.5
        variable.assign(values.astype(variable.dtype.as_numpy_dtype))


@pytest.fixture(scope="session")
def ranking_table() -> dict:
    """2,400 synthetic joined rows (first 2,000 for training, the rest held out)."""
    return synthetic_table()


@pytest.fixture
def features(ranking_table) -> dict:
    """The first 16 rows without the label: a model input batch."""
    return {k: v[:16] for k, v in ranking_table.items() if k != "label"}


@pytest.fixture
def train_and_score():
    """Returns ``run(model, table, epochs=6, learning_rate=2e-2) -> (losses, held-out AUC)``."""

    def run(model, table, epochs=6, learning_rate=2e-2):
        train = {k: v[:2000] for k, v in table.items()}
        held_out = {k: v[2000:] for k, v in table.items() if k != "label"}
        tf.keras.utils.set_random_seed(0)
        ds = tf.data.Dataset.from_tensor_slices(train).shuffle(2000, seed=0).batch(250)
        model.compile(tf.keras.optimizers.Adam(learning_rate))
        history = model.fit(ds, epochs=epochs, verbose=0)
        scores = model.predict(held_out, batch_size=400, verbose=0)
        return history.history["loss"], auc(table["label"][2000:], scores)

    return run


@pytest.fixture
def auc_fn():
    """The rank-sum AUC used by `train_and_score`, for its own test."""
    return auc


@pytest.fixture
def small_towers(ranking_table):
    """Returns ``make(k, user=..., movie=..., prefix="") -> (query_tower, candidate_tower)``.

    Few fields keep tracing (training, SavedModel export) fast; ``movie_genres`` (padded
    with -1) and ``recent_movie_ids`` become multi-valued fields, everything else categorical.
    """

    def column(key):
        if key == "movie_genres":
            return MultiCategorical(key, padding="-1")
        if key == RECENT_MOVIES:
            return MultiCategorical(key)
        return Categorical(key)

    def make(k=4, user=("user_id", "user_gender"), movie=("movie_id", "movie_genres"), prefix=""):
        return (
            build_tower(ranking_table, [column(c) for c in user], k, name=f"{prefix}user_tower"),
            build_tower(ranking_table, [column(c) for c in movie], k, name=f"{prefix}movie_tower"),
        )

    return make


@pytest.fixture
def model_config_roundtrip():
    """Returns ``check(model, features)``: get_config/from_config and generic deserialize.

    Like the global ``config_roundtrip`` but for models, whose serialized form must be
    rebuilt without its ``build_config``: Keras would build a subclassed model from float
    placeholders, which string features (ids, titles) cannot take. Returns the clone.
    """

    def check(model, features):
        expected = np.asarray(model(features, training=False))
        config = model.get_config()
        serialized = tf.keras.layers.serialize(model)
        serialized.pop("build_config", None)
        clone = None
        for clone in (type(model).from_config(config), tf.keras.layers.deserialize(serialized)):
            assert type(clone) is type(model)
            assert clone.get_config() == config
            clone(features)
            clone.set_weights(model.get_weights())
            np.testing.assert_allclose(clone(features, training=False), expected, atol=1e-6)
        return clone

    return check


SEQUENCE_SMALL = {
    "sasrec": {"num_blocks": 1, "num_heads": 2, "dropout": 0.1},
    "gru4rec": {"gru_units": (8,), "dropout": 0.1},
    "bert4rec": {"num_blocks": 1, "num_heads": 2, "dropout": 0.1, "mask_probability": 0.3},
}
"""Small backbone settings of each sequential model (embedding_dim 8, histories of 6)."""


@pytest.fixture(scope="session")
def sequential():
    """Returns ``make(name, data, **overrides)``: a small sequential model of `SEQUENCE_SMALL`."""
    from tfrec.models import build_model

    def make(name, data, **overrides):
        settings = {"embedding_dim": 8, "history_length": 6, **SEQUENCE_SMALL[name], **overrides}
        return build_model(name, data, **settings)

    return make


@pytest.fixture(scope="session")
def by_hand():
    """Numpy look-ups of a sequential model's item table, independent of its towers.

    ``by_hand.table(model)`` is the ``movie_id`` table (row 0 out of vocabulary, row i + 1 the
    vocabulary's i-th id); ``by_hand.rows(model, ids)`` maps raw movie ids to table rows (-1 for
    ""); ``by_hand.sequence(model, histories)`` is ``(embeddings [B, L, k], mask [B, L])`` of
    "" left-padded histories, zeros at padding.
    """

    class ByHand:
        @staticmethod
        def table(model):
            return model.candidate_tower.encoder("movie_id").embedding.embeddings.numpy()

        @staticmethod
        def rows(model, ids):
            position = {
                v: i + 1 for i, v in enumerate(model.candidate_tower.encoder("movie_id").vocabulary)
            }
            ids = np.asarray(ids).astype(str)
            return np.vectorize(lambda v: -1 if v == "" else position.get(v, 0))(ids)

        @classmethod
        def sequence(cls, model, histories):
            rows = cls.rows(model, histories)
            mask = rows >= 0
            return cls.table(model)[np.maximum(rows, 0)] * mask[..., None], mask

    return ByHand()


@pytest.fixture(scope="session")
def untrained_full_ranking():
    """Returns ``metrics(name, data, settings)``: validation full-ranking metrics of a freshly
    initialised model (the "random model" a short fit must beat)."""
    from tfrec.evaluation import evaluate_model
    from tfrec.models import build_model

    def metrics(name, data, settings):
        tf.keras.utils.set_random_seed(0)
        model = build_model(name, data, **settings)
        return evaluate_model(model, data, "valid", protocols=("full",))

    return metrics

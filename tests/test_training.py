"""RankingData: leakage-free inputs, pipelines equal to the raw-feature path, evaluation, fit."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import build_model
from tfrec.towers import RECENT_MOVIES
from tfrec.training import RankingData, feature_store, fit


@pytest.fixture(scope="module")
def model(tiny_data):
    return build_model("deepfm", tiny_data.example_table(), embedding_dim=4, dnn_units=(8,))


def test_training_history_is_strictly_earlier(tiny_data):
    train = tiny_data.train
    # Row with the latest timestamp of some user: its history holds that user's earlier movies.
    user = train["user_index"][0]
    rows = np.flatnonzero(train["user_index"] == user)
    order = rows[np.lexsort((rows, train["timestamp"][rows]))]
    last = order[-1]
    expected = train["movie_id"][order[:-1]][::-1][: tiny_data.history_length]
    got = train[RECENT_MOVIES][last]
    np.testing.assert_array_equal(got[: len(expected)], expected)
    # The first interaction has no history at all.
    assert (train[RECENT_MOVIES][order[0]] == "").all()


def test_preprocessed_batches_equal_the_raw_feature_path(tiny_data, model):
    """The fast path (ids gathered per row) must score exactly like raw features joined by id."""
    users, targets = tiny_data.targets("test")
    score = tiny_data.score_fn(model, "test")(
        users[:5], np.stack([targets[:5], targets[:5] * 0], 1)
    )
    store = feature_store(tiny_data.movielens, tiny_data.exclude["test"], tiny_data.history_length)
    ml = tiny_data.movielens
    raw = store.join(
        {
            "user_id": tf.constant(np.repeat(ml.user_ids[users[:5]], 2)),
            "movie_id": tf.constant(
                ml.movie_ids[np.stack([targets[:5], targets[:5] * 0], 1).ravel()]
            ),
        }
    )
    np.testing.assert_allclose(model(raw).numpy().reshape(5, 2), score, rtol=1e-5, atol=1e-6)


def test_dataset_batches_have_labels_and_negatives(tiny_data, model):
    batches = list(tiny_data.dataset(model, num_negatives=3, batch_size=40))
    assert batches[0]["label"].shape == (40,)
    labels = np.concatenate([b["label"].numpy() for b in batches])
    assert labels.size == 4 * len(tiny_data.train["user_index"])
    assert labels.mean() == 0.25  # one positive and three negatives per training row
    assert "user_tower/recent_movie_ids" in batches[0]


def test_fit_with_early_stopping_restores_best_epoch(tiny_data):
    model = build_model("deepfm", tiny_data.example_table(), embedding_dim=4, dnn_units=(8,))
    history = fit(model, tiny_data, epochs=3, batch_size=128, patience=1, verbose=0)
    assert "val_full_ndcg@10" in history.history
    assert 1 <= len(history.history["loss"]) <= 3


def test_empty_split_is_a_clear_error():
    ml = synthetic_movielens(num_users=5, num_movies=10, ratings_per_user=3)
    rows = ml.ratings["user_index"] < 0
    split_ratings = {k: v[rows] for k, v in ml.ratings.items()}
    from tfrec.data import Split

    with pytest.raises(ValueError, match="split is empty"):
        RankingData.from_movielens(ml, split=Split(ml.ratings, split_ratings, split_ratings))

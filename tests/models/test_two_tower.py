"""TwoTower: corrected in-batch softmax against hand-computed losses, config and SavedModel."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.encoders import CategoricalEncoder
from tfrec.models import TwoTower, build_model
from tfrec.retrieval import (
    FrequencyEstimator,
    evaluate_retrieval,
    positives_dataset,
    retrieval_score_fn,
    synthetic_catalogue,
)
from tfrec.towers import Tower
from tfrec.training import RankingData

T = 0.5


def towers(dim=4):
    users = [str(i) for i in range(6)]
    movies = [str(i) for i in range(8)]
    user = Tower([CategoricalEncoder("user_id", users, dim, name="user_id")], name="user_tower")
    movie = Tower(
        [CategoricalEncoder("movie_id", movies, dim, name="movie_id")], name="movie_tower"
    )
    return user, movie


def model(**kwargs):
    options = dict(
        units=(), temperature=T, logq="none", mixed_negatives=False, remove_accidental_hits=False
    )
    options.update(kwargs)
    return TwoTower(*towers(), **options)


def batch(movies=("0", "1", "2", "3"), **extra):
    users = [str(i) for i in range(len(movies))]
    return {"user_id": tf.constant(users), "movie_id": tf.constant(list(movies)), **extra}


def softmax_loss(logits, positives):
    """Mean over rows of -log softmax(logits)[row, positive column], in float64."""
    logits = np.asarray(logits, np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(log_softmax[np.arange(len(positives)), positives]))


def vectors(m, features):
    return m.user_vectors(features).numpy(), m.movie_vectors(features).numpy()


def test_task_matches_softmax_computed_by_hand():
    task = model(remove_accidental_hits=False).task
    q = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    # Temperature 0.5 doubles the logits: row 0 is [2, 0], row 1 is [0, 2].
    expected = np.log(1 + np.exp(-2.0))
    assert float(task(q, q, compute_metrics=False)) == pytest.approx(expected, rel=1e-6)
    # log-Q with q = [0.5, 0.25]: row 0 [2 + ln 2, ln 4], row 1 [ln 2, 2 + ln 4].
    got = task(q, q, candidate_sampling_probability=tf.constant([0.5, 0.25]))
    row0 = -np.log(np.exp(2 + np.log(2)) / (np.exp(2 + np.log(2)) + 4))
    row1 = -np.log(np.exp(2 + np.log(4)) / (2 + np.exp(2 + np.log(4))))
    assert float(got) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_loss_without_correction_is_in_batch_softmax():
    m = model()
    features = batch()
    u, v = vectors(m, features)
    expected = softmax_loss(u @ v.T / T, np.arange(4))
    assert float(m.compute_loss(features)) == pytest.approx(expected, rel=1e-5)


def test_log_q_subtracts_log_probability_of_each_candidate():
    m = model(logq="feature")
    p = np.array([0.4, 0.1, 0.3, 0.2], np.float32)
    features = batch(movie_probability=tf.constant(p))
    u, v = vectors(m, features)
    expected = softmax_loss(u @ v.T / T - np.log(p)[None, :], np.arange(4))
    assert float(m.compute_loss(features)) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(softmax_loss(u @ v.T / T, np.arange(4)), rel=1e-3)


def test_accidental_hits_are_not_negatives():
    m = model(remove_accidental_hits=True)
    features = batch(movies=("5", "1", "5", "3"))
    u, v = vectors(m, features)
    logits = u @ v.T / T
    logits[0, 2] = logits[2, 0] = -np.inf  # the same movie as the row's positive
    assert float(m.compute_loss(features)) == pytest.approx(
        softmax_loss(logits, np.arange(4)), rel=1e-5
    )


def test_mixed_negatives_join_the_softmax_with_their_sampling_probability():
    m = model(logq="feature", mixed_negatives=True, catalogue_size=8)
    label = np.array([1, 0, 1, 1, 0], np.float32)
    p = np.array([0.5, 0.1, 0.2, 0.3, 0.05], np.float32)
    features = batch(
        movies=("0", "6", "2", "3", "7"),
        label=tf.constant(label),
        movie_probability=tf.constant(p),
    )
    u, v = vectors(m, features)
    pos, neg = label > 0, label == 0
    columns = np.concatenate([v[pos], v[neg]])
    # 3 in-batch draws from p and 2 uniform draws over 8 movies, per the docstring formula.
    q = (3 * np.concatenate([p[pos], p[neg]]) + 2 / 8) / 5
    logits = u[pos] @ columns.T / T - np.log(q)[None, :]
    assert float(m.compute_loss(features)) == pytest.approx(
        softmax_loss(logits, np.arange(3)), rel=1e-5
    )


def test_frequency_estimator_follows_the_streaming_recurrence():
    estimator = FrequencyEstimator(num_buckets=4096, alpha=0.5)
    ids = tf.constant(["a", "b"])
    assert len(set(estimator.buckets(ids).numpy().tolist())) == 2
    estimator(ids, training=True)  # step 1: both seen first, gap = 1
    estimator(tf.constant(["a"]), training=True)  # step 2: a's gap 0.5 * 1 + 0.5 * 1 = 1
    got = estimator(ids, training=True).numpy()  # step 3: b's gap 0.5 * 1 + 0.5 * 2 = 1.5
    np.testing.assert_allclose(got, [1.0, 1 / 1.5], rtol=1e-6)
    np.testing.assert_allclose(estimator(ids).numpy(), got)  # reading does not update
    assert int(estimator.step.numpy()) == 3


def test_streaming_log_q_uses_the_estimator():
    m = model(logq="streaming", estimator_alpha=1.0)
    features = batch(movies=("0", "1", "0", "3"), label=tf.constant([1.0, 1.0, 1.0, 1.0]))
    m.compute_loss(features, training=True)  # step 1: every bucket's gap is 1
    q = m.candidate_probability(features, tf.constant([True] * 4)).numpy()
    np.testing.assert_allclose(q, [0.25] * 4, rtol=1e-6)  # appearances 1 per batch / 4 draws


def test_logits_are_cosines_over_temperature():
    m = model(units=(3,))
    features = batch()
    u, v = vectors(m, features)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(m(features).numpy(), (u * v).sum(1) / T, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"representation": "mean"}, "representation"),
        ({"temperature": 0.0}, "temperature"),
        ({"logq": "exact"}, "logq"),
        ({"units": (4, -1)}, "units"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_concat_needs_units_when_towers_differ():
    user, _ = towers()
    movie = Tower(
        [
            CategoricalEncoder("movie_id", ["1"], 4, name="movie_id"),
            CategoricalEncoder("movie_title", ["x"], 4, name="movie_title"),
        ]
    )
    with pytest.raises(ValueError, match="units"):
        TwoTower(user, movie, units=(), representation="concat")
    TwoTower(user, movie, units=(4,), representation="concat")(
        {
            "user_id": tf.constant(["1"]),
            "movie_id": tf.constant(["1"]),
            "movie_title": tf.constant(["x"]),
        }
    )


def test_config_and_savedmodel_round_trip(tmp_path):
    m = model(
        units=(5, 3),
        representation="concat",
        logq="streaming",
        mixed_negatives=True,
        catalogue_size=8,
    )
    features = batch()
    expected = m(features).numpy()
    clone = TwoTower.from_config(m.get_config())
    clone(features)
    clone.set_weights(m.get_weights())
    assert clone.get_config() == m.get_config()
    np.testing.assert_allclose(clone(features).numpy(), expected, rtol=1e-6)
    m.save(tmp_path / "two_tower")
    loaded = tf.keras.models.load_model(tmp_path / "two_tower", compile=False)
    assert type(loaded) is TwoTower
    np.testing.assert_allclose(loaded(features).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        loaded.user_vectors(features).numpy(), m.user_vectors(features).numpy(), rtol=1e-6
    )


@pytest.fixture(scope="module")
def trained():
    data = RankingData.from_movielens(synthetic_catalogue(60, 80, 10, seed=3), history_length=4)
    m = build_model("two_tower", data.example_table(), embedding_dim=8, units=(8,))
    assert isinstance(m, TwoTower)
    assert m.catalogue_size == np.unique(data.example_table()["movie_id"]).size
    m.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)  # tracing costs more here
    history = m.fit(positives_dataset(m, data, batch_size=128), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    return m, data


def test_positives_dataset_has_only_positive_rows(trained):
    m, data = trained
    first = next(iter(positives_dataset(m, data, batch_size=32)))
    assert "label" not in first and first["movie_id"].shape == (32,)
    mixed = next(iter(positives_dataset(m, data, batch_size=30, num_negatives=2)))
    assert float(tf.reduce_sum(mixed["label"])) == pytest.approx(10, abs=6)


def test_retrieval_metrics_score_by_dot_product(trained):
    m, data = trained
    users = np.array([0, 5, 7])
    items = np.tile(np.arange(data.movielens.num_movies), (3, 1))
    dots = retrieval_score_fn(m, data, "test")(users, items)
    np.testing.assert_allclose(
        dots / m.temperature, data.score_fn(m, "test")(users, items), rtol=1e-4, atol=1e-4
    )
    metrics = evaluate_retrieval(m, data, "test")
    assert metrics["hr@10"] <= metrics["hr@50"] <= metrics["hr@100"] == 1.0  # 80 movies

"""TwoTower: corrected in-batch softmax against hand-computed losses, config and SavedModel."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import Split, SplitData
from tfrec.evaluation import evaluate_model, score_fn
from tfrec.features.encoders import CategoricalEncoder
from tfrec.features.inputs import ModelInputs
from tfrec.features.towers import Tower
from tfrec.models import TwoTower, build_model
from tfrec.tasks import InBatchSoftmax
from tfrec.training import fit

T = 0.5


def towers(dim=4):
    users = [str(i) for i in range(6)]
    movies = [str(i) for i in range(8)]
    user = Tower([CategoricalEncoder("user_id", users, dim, name="user_id")], name="user_tower")
    movie = Tower(
        [CategoricalEncoder("movie_id", movies, dim, name="movie_id")], name="movie_tower"
    )
    return user, movie


def model(units=(), representation="pooled", temperature=T, **task_options):
    options = dict(logq="none", mixed_negatives=False, remove_accidental_hits=False)
    options.update(task_options)
    return TwoTower(*towers(), units=units, representation=representation,
                    temperature=temperature, task=InBatchSoftmax(**options), history_length=0,
                    l2=0.0)  # fmt: skip


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
    query, candidates = m.encode_query(features), m.encode_candidates(features)
    return query["vector"].numpy(), candidates["vector"].numpy()


def test_task_matches_softmax_computed_by_hand():
    task = model().task
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    # Temperature 0.5 doubles the logits: row 0 is [2, 0], row 1 is [0, 2].
    logits = tf.constant(q @ q.T / T)
    expected = np.log(1 + np.exp(-2.0))
    assert float(task(logits)) == pytest.approx(expected, rel=1e-6)
    # log-Q with q = [0.5, 0.25]: row 0 [2 + ln 2, ln 4], row 1 [ln 2, 2 + ln 4].
    got = task(logits, None, tf.constant([0.5, 0.25]))
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
    # Each of the 4 in-batch draws is item i with probability p_i: q_i = 4 p_i / 4.
    expected = softmax_loss(u @ v.T / T - np.log(p)[None, :], np.arange(4))
    assert float(m.compute_loss(features)) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(softmax_loss(u @ v.T / T, np.arange(4)), rel=1e-3)
    with pytest.raises(KeyError, match="movie_probability"):
        m.compute_loss(batch())


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


def test_mixed_negatives_with_log_q_need_the_catalogue_size():
    m = model(logq="feature", mixed_negatives=True)
    features = batch(label=tf.constant([1.0, 0.0, 1.0, 1.0]), movie_probability=tf.ones([4]))
    with pytest.raises(ValueError, match="Received: catalogue_size=None"):
        m.compute_loss(features)


def test_streaming_log_q_uses_the_estimator():
    m = model(logq="streaming", estimator_alpha=1.0)
    features = batch(movies=("0", "1", "0", "3"), label=tf.constant([1.0, 1.0, 1.0, 1.0]))
    m.compute_loss(features, training=True)  # step 1: every bucket's gap is 1
    positive = tf.constant([True] * 4)
    q = m.task.candidate_probability(features["movie_id"], positive, features).numpy()
    np.testing.assert_allclose(q, [0.25] * 4, rtol=1e-6)  # appearances 1 per batch / 4 draws


def test_logits_are_cosines_over_temperature():
    m = model(units=(3,))
    features = batch()
    u, v = vectors(m, features)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)
    # atol too: a cosine near 0 (-0.005 in one CI run) differs from numpy in float32 rounding.
    np.testing.assert_allclose(m(features).numpy(), (u * v).sum(1) / T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        m.score_all(m.encode_query(features), m.encode_candidates(features)),
        u @ v.T / T,
        rtol=1e-5,
        atol=1e-6,
    )
    assert m.dot_product and m.task.activation(tf.constant([3.0])).numpy()[0] == 3.0


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
    common = {"temperature": 1.0, "task": "in_batch", "history_length": 0, "l2": 0.0}
    with pytest.raises(ValueError, match="units"):
        TwoTower(user, movie, units=(), representation="concat", **common)
    TwoTower(user, movie, units=(4,), representation="concat", **common)(
        {
            "user_id": tf.constant(["1"]),
            "movie_id": tf.constant(["1"]),
            "movie_title": tf.constant(["x"]),
        }
    )


def test_config_and_savedmodel_round_trip(model_config_roundtrip, savedmodel_roundtrip):
    m = model(units=(5, 3), representation="concat", logq="streaming", mixed_negatives=True,
              catalogue_size=8)  # fmt: skip
    features = {k: v.numpy() for k, v in batch().items()}
    clone = model_config_roundtrip(m, features)
    assert clone.task.get_config() == m.task.get_config()
    reloaded = savedmodel_roundtrip(m, features)
    np.testing.assert_allclose(
        reloaded.encode_query(features)["vector"].numpy(), vectors(m, features)[0], rtol=1e-6
    )


def test_catalogue_size_counts_the_items_negatives_are_drawn_from(tiny_movielens, ranking_table):
    """Regression: mixed negatives are drawn from the whole catalogue, so their log-Q uses its
    size even when some items never occur in the train split (it once used the train items)."""
    full = SplitData.from_movielens(tiny_movielens)
    train = full.split.train
    keep = train["movie_index"] != 0  # item 0 only in valid / test now
    data = SplitData.from_movielens(
        tiny_movielens, Split({k: v[keep] for k, v in train.items()}, *full.split[1:])
    )
    assert np.unique(data.train["movie_index"]).size == data.num_items - 1
    m = build_model("two_tower", data, embedding_dim=4, history_length=0)
    assert m.task.catalogue_size == data.num_items
    from_table = build_model("two_tower", ranking_table, embedding_dim=4, history_length=0)
    assert from_table.task.catalogue_size == np.unique(ranking_table["movie_id"]).size
    explicit = build_model("two_tower", data, embedding_dim=4, history_length=0, catalogue_size=7)
    assert explicit.task.catalogue_size == 7


@pytest.fixture(scope="module")
def trained(tiny_data):
    m = build_model("two_tower", tiny_data, embedding_dim=8, units=(8,), history_length=4)
    assert isinstance(m, TwoTower) and m.task.objective == "in_batch"
    assert m.task.catalogue_size == tiny_data.num_items
    history = fit(m, tiny_data, epochs=1, batch_size=128, num_negatives=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    return m


def test_catalogue_scores_are_dot_products_of_the_vectors(trained, tiny_data):
    users = np.array([0, 5, 7])
    items = np.tile(np.arange(tiny_data.num_items), (3, 1))
    inputs = ModelInputs.build(trained, tiny_data, "test")
    u = trained.encode_query(inputs.users(users))["vector"].numpy()
    v = trained.encode_candidates(inputs.per_item)["vector"].numpy()
    scores = score_fn(trained, tiny_data, "test")(users, items)
    np.testing.assert_allclose(scores, u @ v.T / trained.temperature, rtol=1e-4, atol=1e-4)


def test_retrieval_metrics(trained, tiny_data):
    metrics = evaluate_model(trained, tiny_data, "test", ks=(10, 50, 100), protocols=("full",))
    # 80 movies: every target is within the top 100 unseen items.
    assert metrics["full_hr@10"] <= metrics["full_hr@50"] <= metrics["full_hr@100"] == 1.0

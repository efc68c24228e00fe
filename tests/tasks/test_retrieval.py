"""InBatchSoftmax: the loss by hand on small logits matrices (log-Q, accidental hits, mixed
negatives) and each candidate's sampling probability by the docstring's formula."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.tasks import LOGQ_MODES, PROBABILITY_KEY, InBatchSoftmax

LOGITS = np.array([[2.0, 0.0, 1.0], [0.5, 1.0, -1.0], [0.0, 3.0, 1.0]], np.float32)
Q = np.array([0.5, 0.2, 0.3], np.float32)


def softmax_loss(logits, excluded=None):
    """Mean over rows r of -log softmax(row r)[r], leaving `excluded` entries out, in float64."""
    logits = np.asarray(logits, np.float64).copy()
    if excluded is not None:
        logits[excluded] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    rows = np.arange(logits.shape[0])
    return float(np.mean(log_norm - logits[rows, rows]))


def _task(**kwargs):
    options = {"logq": "none", "mixed_negatives": False, "remove_accidental_hits": True}
    return InBatchSoftmax(**{**options, **kwargs})


def test_plain_in_batch_softmax():
    loss = _task()(tf.constant(LOGITS), tf.constant(["a", "b", "c"]))
    # Row 0: log(e^2 + 1 + e) - 2; row 1: log(e^.5 + e + e^-1) - 1; row 2: log(1 + e^3 + e) - 1.
    by_hand = np.mean(
        [
            np.log(np.exp(2) + 1 + np.e) - 2,
            np.log(np.exp(0.5) + np.e + np.exp(-1)) - 1,
            np.log(1 + np.exp(3) + np.e) - 1,
        ]
    )
    assert float(loss) == pytest.approx(by_hand, rel=1e-6)
    assert float(loss) == pytest.approx(softmax_loss(LOGITS), rel=1e-6)


def test_log_q_subtracts_the_log_probability_of_each_candidate():
    loss = _task()(tf.constant(LOGITS), tf.constant(["a", "b", "c"]), tf.constant(Q))
    corrected = LOGITS - np.log(Q)[None, :]
    assert float(loss) == pytest.approx(softmax_loss(corrected), rel=1e-6)
    # Row 0 by hand: logits 2 + ln 2, 0 + ln 5, 1 + ln(10/3).
    row0 = np.log(2 * np.exp(2) + 5 + 10 / 3 * np.e) - (2 + np.log(2))
    first = _task()(tf.constant(LOGITS[:1]), tf.constant(["a", "b", "c"]), tf.constant(Q))
    assert float(first) == pytest.approx(row0, rel=1e-6)
    assert float(loss) != pytest.approx(softmax_loss(LOGITS), rel=1e-3)


def test_accidental_hits_are_not_negatives():
    ids = tf.constant(["a", "b", "a"])  # rows 0 and 2 share their positive item
    excluded = np.zeros((3, 3), bool)
    excluded[0, 2] = excluded[2, 0] = True
    loss = _task()(tf.constant(LOGITS), ids)
    assert float(loss) == pytest.approx(softmax_loss(LOGITS, excluded), rel=1e-6)
    with_q = _task()(tf.constant(LOGITS), ids, tf.constant(Q))
    assert float(with_q) == pytest.approx(softmax_loss(LOGITS - np.log(Q), excluded), rel=1e-6)
    kept = _task(remove_accidental_hits=False)(tf.constant(LOGITS), ids)
    assert float(kept) == pytest.approx(softmax_loss(LOGITS), rel=1e-6)
    no_ids = _task()(tf.constant(LOGITS))
    assert float(no_ids) == pytest.approx(softmax_loss(LOGITS), rel=1e-6)


def test_extra_candidate_columns_are_negatives_for_every_row():
    # 2 positive rows against 3 candidates (their own items, then one sampled negative).
    logits = LOGITS[:2]
    loss = _task(mixed_negatives=True)(tf.constant(logits), tf.constant(["a", "b", "z"]))
    assert float(loss) == pytest.approx(softmax_loss(logits), rel=1e-6)


def test_candidate_probability_feature_mode_by_the_formula():
    task = _task(logq="feature", mixed_negatives=True, catalogue_size=8)
    positive = np.array([True, False, True, True, False])
    p = np.array([0.5, 0.1, 0.2, 0.3, 0.05], np.float32)
    q = task.candidate_probability(
        tf.constant(["0", "6", "2", "3", "7"]), tf.constant(positive), {PROBABILITY_KEY: p}
    )
    # 3 in-batch draws from p and 2 uniform draws over 8 items: q = (3 p + 2 / 8) / 5,
    # positives' columns first, then the negatives'.
    expected = (3 * np.concatenate([p[positive], p[~positive]]) + 2 / 8) / 5
    np.testing.assert_allclose(q, expected, rtol=1e-6)
    assert q.numpy()[0] == pytest.approx((3 * 0.5 + 0.25) / 5)
    alone = _task(logq="feature").candidate_probability(
        tf.constant(["0", "6", "2", "3", "7"]), tf.constant(positive), {PROBABILITY_KEY: p}
    )
    np.testing.assert_allclose(alone, p[positive], rtol=1e-6)  # P p / P
    assert _task().candidate_probability(tf.constant(["a"]), tf.constant([True]), {}) is None


def test_candidate_probability_streaming_mode_uses_the_estimator():
    task = _task(logq="streaming", estimator_alpha=1.0)
    ids = tf.constant(["0", "1", "0", "3"])
    q = task.candidate_probability(ids, tf.ones([4], tf.bool), {}, training=True)
    # Step 1: every bucket's gap is 1, i.e. one appearance per batch; 4 draws per batch.
    np.testing.assert_allclose(q, [0.25] * 4, rtol=1e-6)
    assert int(task.estimator.step.numpy()) == 1
    task.candidate_probability(ids, tf.ones([4], tf.bool), {}, training=False)
    assert int(task.estimator.step.numpy()) == 1  # evaluation does not update


def test_candidate_probability_errors():
    feature = _task(logq="feature")
    with pytest.raises(KeyError, match=f"needs the batch feature '{PROBABILITY_KEY}'"):
        feature.candidate_probability(tf.constant(["a"]), tf.constant([True]), {"movie_id": 1})
    mixed = _task(logq="feature", mixed_negatives=True)
    with pytest.raises(ValueError, match="Received: catalogue_size=None. Fix: pass catalogue_size"):
        mixed.candidate_probability(
            tf.constant(["a", "b"]), tf.constant([True, False]), {PROBABILITY_KEY: [0.5, 0.5]}
        )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"logq": "exact"}, r"`logq` must be one of .*Received: logq='exact'"),
        (
            {"catalogue_size": 0},
            "`catalogue_size` must be a positive integer. Received: catalogue_size=0",
        ),
        ({"catalogue_size": True}, "Received: catalogue_size=True"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        InBatchSoftmax(**kwargs)


def test_activation_objective_and_modes():
    task = _task()
    assert task.objective == "in_batch" and LOGQ_MODES == ("none", "streaming", "feature")
    np.testing.assert_array_equal(task.activation(tf.constant(LOGITS)), LOGITS)
    assert _task(logq="streaming").estimator is not None and task.estimator is None


@pytest.mark.parametrize("logq", LOGQ_MODES)
def test_config_round_trip(logq, config_roundtrip):
    task = InBatchSoftmax(
        logq=logq,
        mixed_negatives=logq != "none",
        remove_accidental_hits=False,
        catalogue_size=12,
        estimator_buckets=64,
        estimator_alpha=0.5,
    )
    clone = config_roundtrip(task, tf.constant(LOGITS), tf.constant(["a", "b", "a"]))
    assert clone.get_config()["estimator_buckets"] == 64
    assert (clone.logq, clone.catalogue_size, clone.estimator_alpha) == (logq, 12, 0.5)

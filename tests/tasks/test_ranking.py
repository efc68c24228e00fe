"""RankingTask: binary cross-entropy on logits by hand, metrics on and off, activation, config."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.tasks import RankingTask

LABELS = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
LOGITS = np.array([2.0, -1.0, 0.5, 1.5], np.float32)


def _bce(labels, logits):
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def test_loss_is_binary_cross_entropy_from_logits():
    task = RankingTask()
    assert task.objective == "pointwise"
    loss = task(tf.constant(LABELS), tf.constant(LOGITS))
    assert loss.shape == () and float(loss) == pytest.approx(_bce(LABELS, LOGITS), rel=1e-6)
    # Column vectors and integer labels are the same rows.
    again = task(tf.constant([[1], [0], [1], [0]]), tf.constant(LOGITS[:, None]))
    assert float(again) == pytest.approx(float(loss), rel=1e-6)


def test_metrics_on_track_auc_and_logloss():
    task = RankingTask(metrics=True)
    task(tf.constant(LABELS), tf.constant(LOGITS), training=True)
    results = {m.name: float(m.result()) for m in task.metrics}
    # Positives score 2 and 0.5, negatives -1 and 1.5: 3 of the 4 pairs are ordered right.
    assert results["auc"] == pytest.approx(0.75, abs=1e-3)
    assert results["logloss"] == pytest.approx(_bce(LABELS, LOGITS), rel=1e-5)


def test_metrics_off_track_nothing_and_keep_the_loss():
    task = RankingTask(metrics=False)
    loss = task(tf.constant(LABELS), tf.constant(LOGITS))
    assert task.metrics == []
    assert float(loss) == pytest.approx(_bce(LABELS, LOGITS), rel=1e-6)
    with pytest.raises(
        ValueError, match="`metrics` must be True or False. Received: metrics='yes'"
    ):
        RankingTask(metrics="yes")


def test_activation_is_the_sigmoid():
    task = RankingTask()
    np.testing.assert_allclose(
        task.activation(tf.constant(LOGITS, tf.float16)), 1 / (1 + np.exp(-LOGITS)), rtol=1e-3
    )
    assert task.activation(tf.constant(LOGITS)).dtype == tf.float32


@pytest.mark.parametrize("metrics", [True, False])
def test_config_round_trip(metrics, config_roundtrip):
    task = RankingTask(metrics=metrics, name="ranking_task")
    clone = config_roundtrip(task, tf.constant(LABELS), tf.constant(LOGITS))
    assert clone.track_metrics is metrics and clone.get_config()["metrics"] is metrics

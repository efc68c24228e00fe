"""SampledBCE: plain BCE (t = 0) and gBCE's calibrated positive term, both worked out by hand;
argument errors; config round trips."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec.tasks import SampledBCE, get_task

POSITIVE = np.array([2.0, -1.0, 0.5], np.float32)
NEGATIVE = np.array([[-1.0, 0.0], [1.0, 3.0], [-2.0, 0.5]], np.float32)


SHIFT = -math.log(2)  # the learned logit offset starts at -log(k); k = 2 below


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_plain_bce_by_hand():
    task = SampledBCE(num_items=100, num_negatives=2)  # calibration 0: plain BCE
    assert task.objective == "negatives" and task.beta == pytest.approx(1.0, rel=1e-12)
    rows = [
        -log_sigmoid(p + SHIFT) - sum(log_sigmoid(-(n + SHIFT)) for n in negatives)
        for p, negatives in zip(POSITIVE.tolist(), NEGATIVE.tolist(), strict=True)
    ]
    # Row 0 spelled out (logits shifted by -log 2, i.e. e^-s scaled by 2):
    # -log(1 / (1 + 2e^-2)) - log(1 - 1 / (1 + 2e)) - log(1 - 1 / (1 + 2)).
    assert rows[0] == pytest.approx(
        math.log(1 + 2 * math.exp(-2)) + math.log(1 + 1 / (2 * math.e)) + math.log(1.5), rel=1e-12
    )
    loss = task(tf.constant(POSITIVE), tf.constant(NEGATIVE))
    assert float(task.offset) == pytest.approx(SHIFT)
    assert float(loss) == pytest.approx(np.mean(rows), rel=1e-6)


@pytest.mark.parametrize(
    ("num_items", "k", "t", "beta"),
    [
        # alpha = k / (N - 1); beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
        (11, 2, 0.5, 0.6),  # alpha 0.2: 0.2 * (0.5 * (1 - 5) + 5) = 0.6
        (11, 2, 1.0, 0.2),  # t = 1: beta = alpha
        (11, 2, 0.0, 1.0),  # t = 0: beta = 1
        (101, 1, 0.75, 0.2575),  # alpha 0.01: 0.01 * (0.75 * (1 - 100) + 100) = 0.2575
        (1683, 256, 0.75, 256 / 1682 * (0.75 * (1 - 1682 / 256) + 1682 / 256)),
    ],
)
def test_gbce_beta_by_hand(num_items, k, t, beta):
    assert SampledBCE(num_items, k, t).beta == pytest.approx(beta, rel=1e-12)


def test_gbce_loss_by_hand():
    task = SampledBCE(num_items=11, num_negatives=2, calibration=0.5)  # beta 0.6 (above)
    rows = [
        -0.6 * log_sigmoid(p + SHIFT) - sum(log_sigmoid(-(n + SHIFT)) for n in negatives)
        for p, negatives in zip(POSITIVE.tolist(), NEGATIVE.tolist(), strict=True)
    ]
    loss = task(tf.constant(POSITIVE), tf.constant(NEGATIVE))
    assert float(loss) == pytest.approx(np.mean(rows), rel=1e-6)
    # gBCE weakens only the positive's pull: with no negatives' share it scales the BCE term.
    bce = SampledBCE(num_items=11, num_negatives=2)(tf.constant(POSITIVE), tf.constant(NEGATIVE))
    negatives_only = np.mean(
        [-sum(log_sigmoid(-(n + SHIFT)) for n in row) for row in NEGATIVE.tolist()]
    )
    assert float(loss) - negatives_only == pytest.approx(0.6 * (float(bce) - negatives_only),
                                                         rel=1e-5)  # fmt: skip


def test_negative_mask_drops_exactly_the_masked_terms_by_hand():
    """A uniform draw that hit its own target is no negative: its term leaves the sum."""
    task = SampledBCE(num_items=11, num_negatives=2, calibration=0.5)  # beta 0.6
    mask = np.array([[True, False], [False, False]] + [[True, True]] * (len(POSITIVE) - 2))
    rows = [
        -0.6 * log_sigmoid(p + SHIFT)
        - sum(log_sigmoid(-(n + SHIFT)) for n, keep in zip(row, keeps, strict=True) if keep)
        for p, row, keeps in zip(POSITIVE.tolist(), NEGATIVE.tolist(), mask.tolist(), strict=True)
    ]
    loss = task(tf.constant(POSITIVE), tf.constant(NEGATIVE), tf.constant(mask))
    assert float(loss) == pytest.approx(np.mean(rows), rel=1e-6)
    unmasked = task(tf.constant(POSITIVE), tf.constant(NEGATIVE))
    assert float(unmasked) > float(loss)  # the dropped terms were positive


def test_extreme_logits_stay_finite_and_the_served_score_is_the_logit():
    task = SampledBCE(num_items=5, num_negatives=1, calibration=1.0)
    loss = task(tf.constant([-200.0, 200.0]), tf.constant([[200.0], [-200.0]]))
    # Row 0: -0.25 * log_sigmoid(-200) - log_sigmoid(-200) = 1.25 * 200; row 1: ~0.
    assert float(loss) == pytest.approx(1.25 * 200 / 2, rel=1e-5)
    np.testing.assert_array_equal(task.activation(tf.constant([-3.0, 4.0])), [-3.0, 4.0])


def test_the_logit_offset_learns_the_base_rate():
    """Regression: with no offset, gBCE-256 collapsed to popularity for tens of epochs.
    The offset starts at -log(k) and is trained: all-zero logits push it down (negatives
    outnumber the positive), while served scores never include it."""
    task = SampledBCE(num_items=1000, num_negatives=256, calibration=0.75)
    with tf.GradientTape() as tape:
        loss = task(tf.zeros([4]), tf.zeros([4, 256]))
    assert float(task.offset) == pytest.approx(-math.log(256))
    assert task.trainable_weights == [task.offset]
    # d loss / d b = -beta (1 - sigmoid(b)) + k sigmoid(b), at b = -log k: sigmoid = 1/257
    beta, sig = task.beta, 1 / 257
    expected = -beta * (1 - sig) + 256 * sig
    assert float(tape.gradient(loss, task.offset)) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(task.activation(tf.constant([-3.0, 4.0])), [-3.0, 4.0])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_items": 0}, "`num_items` must be an integer >= 1. Received: num_items=0"),
        ({"num_items": 10.0}, "Received: num_items=10.0"),
        ({"num_items": 10, "num_negatives": 0}, "Received: num_negatives=0"),
        ({"num_items": 10, "num_negatives": True}, "Received: num_negatives=True"),
        ({"num_items": 10, "num_negatives": 10}, "below num_items=10. Received: num_negatives=10"),
        ({"num_items": 10, "calibration": 1.5}, r"in \[0, 1\]. Received: calibration=1.5"),
        ({"num_items": 10, "calibration": -0.1}, "Received: calibration=-0.1"),
        ({"num_items": 10, "calibration": True}, "Received: calibration=True"),
        ({"num_items": 10, "exclude_seen": "yes"}, "Received: exclude_seen='yes'"),
    ],
)
def test_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SampledBCE(**kwargs)


def test_config_round_trip():
    task = SampledBCE(num_items=50, num_negatives=4, calibration=0.75, exclude_seen=True,
                      name="next_item")  # fmt: skip
    for clone in (
        SampledBCE.from_config(task.get_config()),
        tf.keras.layers.deserialize(tf.keras.layers.serialize(task)),
        get_task(tf.keras.layers.serialize(task)),
    ):
        assert type(clone) is SampledBCE and clone.get_config() == task.get_config()
        assert clone.beta == task.beta
        np.testing.assert_allclose(
            clone(tf.constant(POSITIVE), tf.constant(NEGATIVE[:, :1].repeat(4, 1))),
            task(tf.constant(POSITIVE), tf.constant(NEGATIVE[:, :1].repeat(4, 1))),
        )
    assert get_task("negatives", num_items=50, num_negatives=3).num_negatives == 3

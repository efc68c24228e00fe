"""Tests for tfrec.layers.linear.LinearTerm."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import LinearTerm

WEIGHTS = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], np.float32)
MASK = np.array([[True, False, True], [False, False, False]])


def _layer_with_bias(bias: float) -> LinearTerm:
    layer = LinearTerm()
    layer(WEIGHTS)
    layer.bias.assign(bias)
    return layer


def test_sums_fields_and_adds_bias():
    out = _layer_with_bias(0.25)(WEIGHTS).numpy()
    np.testing.assert_allclose(out, [[1.75], [3.25]])  # 0.5-1+2+0.25, 3+0.25
    assert out.shape == (2, 1)


def test_mask_drops_fields():
    out = _layer_with_bias(0.25)(WEIGHTS, mask=MASK).numpy()
    np.testing.assert_allclose(out, [[2.75], [0.25]])  # 0.5+2+0.25; only the bias
    float_mask = MASK.astype(np.float32)
    np.testing.assert_allclose(_layer_with_bias(0.25)(WEIGHTS, mask=float_mask), out)


def test_without_bias_has_no_weights():
    layer = LinearTerm(use_bias=False)
    np.testing.assert_allclose(layer(WEIGHTS), [[1.5], [3.0]])
    assert layer.weights == []


def test_bias_is_trainable_and_starts_at_zero():
    layer = LinearTerm()
    np.testing.assert_allclose(layer(WEIGHTS), [[1.5], [3.0]])
    assert len(layer.trainable_weights) == 1
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(WEIGHTS))
    np.testing.assert_allclose(tape.gradient(loss, layer.bias), 2.0)  # one per row


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Received: use_bias='yes'"):
        LinearTerm(use_bias="yes")
    with pytest.raises(ValueError, match=r"Received: weights.shape=\(2, 3, 1\)"):
        LinearTerm()(tf.ones([2, 3, 1]))


def test_config_roundtrip(config_roundtrip):
    config_roundtrip(_layer_with_bias(-0.5), WEIGHTS, mask=MASK)
    config_roundtrip(LinearTerm(use_bias=False, name="lin"), WEIGHTS)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    weights = tf.keras.Input(shape=(3,), name="weights")
    mask = tf.keras.Input(shape=(3,), dtype=tf.bool, name="mask")
    layer = LinearTerm()
    model = tf.keras.Model([weights, mask], layer(weights, mask=mask))
    layer.bias.assign(0.75)
    reloaded = savedmodel_roundtrip(model, {"weights": WEIGHTS, "mask": MASK})
    np.testing.assert_allclose(reloaded({"weights": WEIGHTS, "mask": MASK}), [[3.25], [0.75]])

"""Tests for tfrec.layers.normalize.L2Normalize."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import L2Normalize


def test_hand_values_and_zero_vector():
    out = L2Normalize()(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_epsilon_floors_the_norm_not_its_square():
    # ||x|| = 1e-13 < epsilon = 1e-12, so the result is x / 1e-12 = [0.1, 0].
    out = L2Normalize(epsilon=1e-12)(np.array([[1e-13, 0.0]], np.float32))
    np.testing.assert_allclose(out, [[0.1, 0.0]], rtol=1e-5)


def test_random_rows_have_unit_norm_and_keep_direction():
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    out = L2Normalize()(x).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out * np.linalg.norm(x, axis=1, keepdims=True), x, rtol=1e-5)


def test_multiple_axes():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    out = L2Normalize(axis=[1, 2])(x).numpy()
    np.testing.assert_allclose(np.sqrt((out**2).sum(axis=(1, 2))), [1.0, 1.0], rtol=1e-5)
    out0 = L2Normalize(axis=1)(x).numpy()
    np.testing.assert_allclose(np.linalg.norm(out0, axis=1), np.ones((2, 4)), rtol=1e-5)


def test_gradient_is_finite_at_zero():
    x = tf.Variable([[0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(L2Normalize()(x))
    assert np.isfinite(tape.gradient(y, x).numpy()).all()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_low_precision_zero_vector_is_not_nan(policy):
    layer = L2Normalize(dtype=tf.keras.mixed_precision.Policy(policy))
    out = layer(np.array([[0.0, 0.0], [3.0, 4.0]], np.float32))
    assert out.dtype == tf.as_dtype(policy.split("_")[1])
    np.testing.assert_allclose(tf.cast(out, tf.float32), [[0.0, 0.0], [0.6, 0.8]], atol=4e-3)


@pytest.mark.parametrize(
    ("kwargs", "received"),
    [
        ({"epsilon": 0.0}, "epsilon=0.0"),
        ({"epsilon": -1.0}, "epsilon=-1.0"),
        ({"axis": "x"}, "axis='x'"),
        ({"axis": []}, r"axis=\[\]"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received):
        L2Normalize(**kwargs)


def test_axis_out_of_range():
    with pytest.raises(ValueError, match="Received: axis=2"):
        L2Normalize(axis=2)(tf.ones([2, 3]))


def test_config_roundtrip(config_roundtrip):
    x = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)
    config_roundtrip(L2Normalize(axis=[1, 2], epsilon=1e-6, name="norm"), x)
    config_roundtrip(L2Normalize(), x)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    inputs = tf.keras.Input(shape=(4,), name="query")
    model = tf.keras.Model(inputs, L2Normalize()(inputs))
    x = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    x[1] = 0.0
    savedmodel_roundtrip(model, x)

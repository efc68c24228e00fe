"""Tests for tfrec.layers.cross.CrossNetwork."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import CrossNetwork

X0 = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)


def _randomize(layer):
    """Replaces all weights (biases start at zero) with random values."""
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])


def test_full_rank_matches_formula():
    layer = CrossNetwork(num_layers=2)
    layer(X0)
    _randomize(layer)
    w0, b0, w1, b1 = [w.astype(np.float64) for w in layer.get_weights()]
    assert w0.shape == (6, 6) and b0.shape == (6,)
    x0 = X0.astype(np.float64)
    x1 = x0 * (x0 @ w0 + b0) + x0
    x2 = x0 * (x1 @ w1 + b1) + x1
    np.testing.assert_allclose(layer(X0), x2, rtol=1e-4, atol=1e-4)


def test_low_rank_matches_formula():
    layer = CrossNetwork(num_layers=1, projection_dim=2)
    layer(X0)
    _randomize(layer)
    u, v, b = [w.astype(np.float64) for w in layer.get_weights()]
    assert u.shape == (6, 2) and v.shape == (2, 6)
    assert layer.count_params() == 6 * 2 * 2 + 6
    x0 = X0.astype(np.float64)
    np.testing.assert_allclose(layer(X0), x0 * (x0 @ u @ v + b) + x0, rtol=1e-4, atol=1e-4)


def test_without_bias():
    layer = CrossNetwork(num_layers=3, use_bias=False)
    layer(X0)
    _randomize(layer)
    weights = layer.get_weights()
    assert len(weights) == 3
    x0 = x = X0.astype(np.float64)
    for w in weights:
        x = x0 * (x @ w) + x
    np.testing.assert_allclose(layer(X0), x, rtol=1e-4, atol=1e-3)


def test_kernel_initializer_is_used():
    layer = CrossNetwork(num_layers=2, kernel_initializer="ones")
    layer(X0)
    w0, _, w1, _ = layer.get_weights()
    np.testing.assert_array_equal(w0, np.ones((6, 6)))
    np.testing.assert_array_equal(w1, np.ones((6, 6)))


@pytest.mark.parametrize(
    ("kwargs", "received"),
    [
        ({"num_layers": 0}, "num_layers=0"),
        ({"num_layers": 2.0}, "num_layers=2.0"),
        ({"projection_dim": 0}, "projection_dim=0"),
        ({"use_bias": "no"}, "use_bias='no'"),
        ({"kernel_initializer": "nope"}, "kernel_initializer='nope'"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received):
        CrossNetwork(**kwargs)


def test_invalid_input_rank():
    with pytest.raises(ValueError, match=r"Received: x0.shape=\(2, 3, 4\)"):
        CrossNetwork()(tf.ones([2, 3, 4]))


def test_config_roundtrip(config_roundtrip):
    layer = CrossNetwork(num_layers=2, projection_dim=3, use_bias=False, name="dcn")
    layer(X0)
    _randomize(layer)
    config_roundtrip(layer, X0)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    inputs = tf.keras.Input(shape=(6,), name="x0")
    layer = CrossNetwork(num_layers=2, projection_dim=2)
    model = tf.keras.Model(inputs, layer(inputs))
    _randomize(layer)
    savedmodel_roundtrip(model, X0, atol=1e-4, rtol=1e-4)


def test_mixed_bfloat16_smoke():
    policy = tf.keras.mixed_precision.Policy("mixed_bfloat16")
    out = CrossNetwork(num_layers=2, dtype=policy)(X0)
    assert out.dtype == tf.bfloat16 and out.shape == (4, 6)

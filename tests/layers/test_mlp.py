"""Tests for tfrec.layers.mlp.MLP."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import MLP, StatelessDropout

X = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)


def _count(layer, cls) -> int:
    return sum(isinstance(m, cls) for m in layer.submodules)


def test_output_shapes():
    assert MLP([8, 4])(X).shape == (16, 4)
    assert MLP([8, 4], output_units=1)(X).shape == (16, 1)
    assert MLP([], output_units=3)(X).shape == (16, 3)


def test_values_match_dense_relu_dense():
    layer = MLP([3], output_units=2, output_activation="sigmoid")
    out = layer(X).numpy()
    w1, b1, w2, b2 = layer.get_weights()
    hidden = np.maximum(X @ w1 + b1, 0.0)
    expected = 1.0 / (1.0 + np.exp(-(hidden @ w2 + b2)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    layer = MLP([256], activation=None, dropout=0.5)
    inference = layer(X, training=False).numpy()
    np.testing.assert_array_equal(layer(X).numpy(), inference)  # default is inference
    w, b = layer.get_weights()
    np.testing.assert_allclose(inference, X @ w + b, rtol=1e-5, atol=1e-5)
    train = layer(X, training=True).numpy()
    dropped = train == 0.0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(train[~dropped], 2.0 * inference[~dropped], rtol=1e-5)  # 1/(1-0.5)


def test_no_dropout_after_output_layer():
    layer = MLP([], output_units=64, dropout=0.5)
    np.testing.assert_array_equal(layer(X, training=True), layer(X, training=False))
    assert _count(layer, StatelessDropout) == 0
    assert _count(MLP([4, 4], dropout=0.5, output_units=1), StatelessDropout) == 2


def test_batch_norm_present_only_when_asked():
    plain, normed = MLP([8, 4]), MLP([8, 4], batch_norm=True)
    plain(X), normed(X)
    assert _count(plain, tf.keras.layers.BatchNormalization) == 0
    assert _count(normed, tf.keras.layers.BatchNormalization) == 2
    # hidden Dense layers drop their bias under BatchNorm: kernel, gamma, beta per layer
    assert len(normed.trainable_weights) == 6
    assert len(plain.trainable_weights) == 4


def test_batch_norm_comes_before_activation():
    layer = MLP([32], batch_norm=True)
    out = layer(X, training=True).numpy()
    # Batch statistics centre each unit before ReLU, so about half of each column is clipped.
    assert out.min() == 0.0
    assert 0.2 < (out == 0.0).mean() < 0.8


def test_kernel_regularizer_on_every_dense():
    layer = MLP([4, 4], output_units=1, kernel_regularizer="l2")
    layer(X)
    assert len(layer.losses) == 3


@pytest.mark.parametrize(
    ("kwargs", "received"),
    [
        ({"hidden_units": 64}, "hidden_units=64"),
        ({"hidden_units": [64, 0]}, r"hidden_units=\[64, 0\]"),
        ({"hidden_units": []}, r"hidden_units=\[\], output_units=None"),
        ({"hidden_units": [4], "dropout": 1.0}, "dropout=1.0"),
        ({"hidden_units": [4], "dropout": -0.1}, "dropout=-0.1"),
        ({"hidden_units": [4], "batch_norm": "yes"}, "batch_norm='yes'"),
        ({"hidden_units": [4], "output_units": 0}, "output_units=0"),
        ({"hidden_units": [4], "activation": "nope"}, "activation='nope'"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received):
        MLP(**kwargs)


def test_config_roundtrip(config_roundtrip):
    layer = MLP(
        [6, 3],
        activation="gelu",
        dropout=0.2,
        batch_norm=True,
        output_units=1,
        kernel_regularizer="l2",
        name="tower",
    )
    clone = config_roundtrip(layer, X)
    assert clone.name == "tower"


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    inputs = tf.keras.Input(shape=(5,), name="x")
    layer = MLP([8, 4], dropout=0.3, batch_norm=True, output_units=1)
    model = tf.keras.Model(inputs, layer(inputs))
    layer(X, training=True)  # move the BatchNorm moving statistics away from their init
    savedmodel_roundtrip(model, X)


def test_mixed_bfloat16_smoke():
    policy = tf.keras.mixed_precision.Policy("mixed_bfloat16")
    low, full = MLP([8], output_units=1, dtype=policy), MLP([8], output_units=1)
    out = low(X)
    full(X)
    full.set_weights(low.get_weights())
    assert out.dtype == tf.bfloat16
    assert all(w.dtype == tf.float32 for w in low.weights)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    np.testing.assert_allclose(tf.cast(out, tf.float32), full(X), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("batch_norm", "dropout", "output_units"),
    [(False, 0.0, 1), (True, 0.0, 1), (False, 0.4, None), (True, 0.4, 2)],
)
def test_first_layer_parts_add_up_to_the_mlp(batch_norm, dropout, output_units):
    """Split the input [left (2); right (3)]: the shares of the first Dense plus the rest of
    the MLP equal the MLP on the concatenated input, in inference."""
    layer = MLP([6, 4], dropout=dropout, batch_norm=batch_norm, output_units=output_units)
    layer(X, training=True)  # builds; moves BatchNorm statistics away from their init
    rng = np.random.default_rng(1)
    for variable in layer.variables:  # non-trivial biases, gammas, betas and statistics
        values = rng.normal(size=variable.shape)
        if "moving_variance" in variable.name:
            values = np.abs(values) + 0.5
        variable.assign(values.astype(np.float32))
    expected = layer(X, training=False).numpy()
    left = layer.first_layer_part(X[:, :2], 0, 2, bias=True)
    right = layer.first_layer_part(X[:, 2:], 2, 5)
    kernel = layer.get_weights()[0]
    first = X @ kernel + (0.0 if batch_norm else layer.get_weights()[1])
    np.testing.assert_allclose(left + right, first, rtol=1e-5, atol=1e-5)
    got = layer.after_first_layer(left + right).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The query side's share carries the bias once; the candidate side's has none.
    no_bias = layer.first_layer_part(X[:, :2], 0, 2, bias=False).numpy()
    np.testing.assert_allclose(no_bias, X[:, :2] @ kernel[:2], rtol=1e-5, atol=1e-5)
    if dropout:  # training=True would drop units: the fast path must run in inference
        assert not np.allclose(layer.after_first_layer(left + right, training=True), expected)


def test_first_layer_part_errors():
    layer = MLP([4])
    with pytest.raises(ValueError, match="has not been called yet"):
        layer.first_layer_part(X[:, :2], 0, 2)
    layer(X)
    with pytest.raises(ValueError, match=r"rows 0:3 of the first layer take 3.*x.shape=\(16, 2\)"):
        layer.first_layer_part(X[:, :2], 0, 3)

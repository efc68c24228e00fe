"""Tests for tfrec.layers.fm.FactorizationMachine."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import FactorizationMachine


def _pairwise(v: np.ndarray) -> np.ndarray:
    """The explicit O(F^2) definition: sum over i < j of v_i * v_j (per latent dim)."""
    out = np.zeros((v.shape[0], v.shape[2]))
    for i in range(v.shape[1]):
        for j in range(i + 1, v.shape[1]):
            out += v[:, i, :] * v[:, j, :]
    return out


def test_matches_explicit_pairwise_sum():
    v = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    expected = _pairwise(v.astype(np.float64))
    np.testing.assert_allclose(FactorizationMachine()(v), expected.sum(1, keepdims=True), rtol=1e-5)
    bi = FactorizationMachine(reduce_sum=False)(v)
    assert bi.shape == (4, 3)
    np.testing.assert_allclose(bi, expected, rtol=1e-5, atol=1e-5)


def test_hand_computed_example():
    v = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], np.float32)
    np.testing.assert_allclose(FactorizationMachine()(v), [[67.0]])  # 11 + 17 + 39
    np.testing.assert_allclose(FactorizationMachine(reduce_sum=False)(v), [[23.0, 44.0]])


def test_gradient_is_sum_of_the_other_fields():
    # d/dv_f of sum_{i<j} <v_i, v_j> is sum_{g != f} v_g; with an upstream weight per row.
    v = tf.constant([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]]])
    upstream = tf.constant([[2.0], [-1.0]])
    with tf.GradientTape() as tape:
        tape.watch(v)
        out = FactorizationMachine()(v)
    gradient = tape.gradient(out, v, output_gradients=upstream)
    expected = [
        [[2 * 8, 2 * 10], [2 * 6, 2 * 8], [2 * 4, 2 * 6]],
        [[-3.0, -1.0], [-1.5, 0.0], [-2.5, 1.0]],
    ]
    np.testing.assert_allclose(gradient, expected)
    with tf.GradientTape() as tape:  # the same as autodiff of the O(F^2) definition
        tape.watch(v)
        pairs = [tf.reduce_sum(v[:, i] * v[:, j], 1) for i in range(3) for j in range(i + 1, 3)]
        naive = tf.add_n(pairs)[:, None]
    np.testing.assert_allclose(gradient, tape.gradient(naive, v, output_gradients=upstream))


def test_single_field_has_no_interaction():
    np.testing.assert_allclose(FactorizationMachine()(tf.ones([2, 1, 4])), [[0.0], [0.0]])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Received: reduce_sum=1"):
        FactorizationMachine(reduce_sum=1)
    with pytest.raises(ValueError, match=r"Received: embeddings.shape=\(2, 8\)"):
        FactorizationMachine()(tf.ones([2, 8]))


def test_config_roundtrip(config_roundtrip):
    v = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    config_roundtrip(FactorizationMachine(), v)
    config_roundtrip(FactorizationMachine(reduce_sum=False, name="bi"), v)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    inputs = tf.keras.Input(shape=(5, 3), name="embeddings")
    outputs = [FactorizationMachine()(inputs), FactorizationMachine(reduce_sum=False)(inputs)]
    model = tf.keras.Model(inputs, outputs)
    v = np.random.default_rng(2).normal(size=(4, 5, 3)).astype(np.float32)
    savedmodel_roundtrip(model, v)


def test_mixed_bfloat16_smoke():
    policy = tf.keras.mixed_precision.Policy("mixed_bfloat16")
    layer = FactorizationMachine(dtype=policy)
    v = np.random.default_rng(3).uniform(0.0, 1.0, size=(8, 4, 3)).astype(np.float32)
    out = layer(v)
    assert out.dtype == tf.bfloat16
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    expected = _pairwise(v.astype(np.float64)).sum(1, keepdims=True)
    np.testing.assert_allclose(tf.cast(out, tf.float32), expected, rtol=0.05, atol=0.1)

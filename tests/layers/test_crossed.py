"""Tests for tfrec.layers.crossed.CrossedCategorical."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import CrossedCategorical

BINS = 1000
WEIGHTS = (np.arange(BINS, dtype=np.float32) / BINS + 1.0)[:, None]  # bucket b -> 1 + b/1000


def _bucket(string: str) -> int:
    return int(tf.strings.to_hash_bucket_fast(string, BINS))


def _w(*strings: str) -> float:
    return float(sum(WEIGHTS[_bucket(s), 0] for s in strings))


def _layer(**kwargs):
    layer = CrossedCategorical(BINS, padding_values=["", "-1"], **kwargs)
    layer([tf.constant(["a"]), tf.constant(["b"])])
    layer.set_weights([WEIGHTS])
    return layer


def test_single_by_multi_valued_skips_padding():
    gender = tf.constant(["M", "F", "F"])
    genres = tf.constant([[4, -1], [1, 7], [-1, -1]])
    expected = [[_w("M_X_4")], [_w("F_X_1", "F_X_7")], [0.0]]
    np.testing.assert_allclose(_layer()([gender, genres]), expected, rtol=1e-6)
    mean = [[_w("M_X_4")], [_w("F_X_1", "F_X_7") / 2], [0.0]]
    np.testing.assert_allclose(_layer(combiner="mean")([gender, genres]), mean, rtol=1e-6)


def test_multi_by_multi_and_three_way_crosses():
    history = tf.constant([["10", "20", ""]])
    movie = tf.constant([["5", "6"]])
    expected = _w("10_X_5", "10_X_6", "20_X_5", "20_X_6")
    np.testing.assert_allclose(_layer()([history, movie]), [[expected]], rtol=1e-6)
    three = _layer()([tf.constant(["u"]), tf.constant(["g"]), tf.constant(["o"])])
    np.testing.assert_allclose(three, [[_w("u_X_g_X_o")]], rtol=1e-6)


def test_numbers_and_bools_are_crossed_as_their_strings():
    age, gender = tf.constant([25.0]), tf.constant([True])
    np.testing.assert_allclose(_layer()([age, gender]), [[_w("25_X_true")]], rtol=1e-6)
    sep = CrossedCategorical(BINS, separator="|")
    sep([tf.constant(["a"]), tf.constant(["b"])])
    sep.set_weights([WEIGHTS])
    np.testing.assert_allclose(sep([tf.constant(["a"]), tf.constant([7])]), [[_w("a|7")]])


def test_ragged_inputs_match_padded_ones():
    ragged = tf.ragged.constant([["x"], ["y", "z"]])
    padded = tf.constant([["x", ""], ["y", "z"]])
    users = tf.constant(["u1", "u2"])
    np.testing.assert_allclose(_layer()([users, ragged]), _layer()([users, padded]))


def test_gradient_is_sparse_and_lands_on_the_crossed_buckets():
    layer = _layer()
    with tf.GradientTape() as tape:
        out = layer([tf.constant(["M"]), tf.constant([[4, 9]])])
    gradient = tape.gradient(out, layer.trainable_weights)[0]
    assert isinstance(gradient, tf.IndexedSlices)
    dense = tf.convert_to_tensor(gradient).numpy()[:, 0]
    assert sorted(np.flatnonzero(dense)) == sorted({_bucket("M_X_4"), _bucket("M_X_9")})


def test_invalid_arguments_and_inputs():
    with pytest.raises(ValueError, match="Received: num_bins=0"):
        CrossedCategorical(0)
    with pytest.raises(ValueError, match="Received: combiner='max'"):
        CrossedCategorical(10, combiner="max")
    with pytest.raises(ValueError, match="Received: padding_values='-1'"):
        CrossedCategorical(10, padding_values="-1")
    with pytest.raises(ValueError, match="Received: separator=''"):
        CrossedCategorical(10, separator="")
    with pytest.raises(ValueError, match="at least two features"):
        CrossedCategorical(10)([tf.constant(["a"])])
    with pytest.raises(ValueError, match=r"Received: input.shape=\(1, 1, 1\)"):
        CrossedCategorical(10)([tf.constant(["a"]), tf.constant([[["b"]]])])


def test_config_roundtrip(config_roundtrip):
    layer = CrossedCategorical(
        50, separator="#", padding_values=["-1"], combiner="mean", embeddings_initializer="ones"
    )
    inputs = [tf.constant(["a", "b"]), tf.constant([[1, -1], [2, 3]])]
    clone = config_roundtrip(layer, inputs)
    assert clone.separator == "#" and clone.padding_values == ["-1"]


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    gender = tf.keras.Input(shape=(), dtype=tf.string, name="gender")
    genres = tf.keras.Input(shape=(2,), dtype=tf.int64, name="genres")
    layer = CrossedCategorical(BINS, padding_values=["-1"])
    model = tf.keras.Model([gender, genres], layer([gender, genres]))
    layer.set_weights([WEIGHTS])
    inputs = {"gender": np.array(["M", "F"]), "genres": np.array([[4, -1], [1, 7]])}
    savedmodel_roundtrip(model, inputs)

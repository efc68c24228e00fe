"""Field encoders: ids, pooling, numeric transforms checked against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.encoders import (
    CategoricalEncoder,
    NumericEncoder,
    title_tokens,
    title_year,
)


def test_categorical_looks_up_vocabulary_with_oov_bucket():
    enc = CategoricalEncoder("user_id", vocabulary=["a", "b"], embedding_dim=3)
    emb, w = enc({"user_id": tf.constant(["b", "zzz", "a"])})
    table = enc.embedding.embeddings.numpy()
    # StringLookup: index 0 is OOV, then the vocabulary in order.
    np.testing.assert_allclose(emb.numpy(), table[[2, 0, 1]])
    assert w.shape == (3,)


def test_categorical_accepts_ints_and_bools_as_strings():
    enc = CategoricalEncoder("flag", vocabulary=["false", "true"], embedding_dim=2)
    ids = enc.preprocess({"flag": tf.constant([True, False])}).numpy()
    np.testing.assert_array_equal(ids, [2, 1])
    genre = CategoricalEncoder("g", vocabulary=["7", "3"], embedding_dim=2)
    np.testing.assert_array_equal(
        genre.preprocess({"g": tf.constant([3, 7, 9])}).numpy(), [2, 1, 0]
    )


def test_multi_valued_mean_pools_only_non_padding_entries():
    enc = CategoricalEncoder(
        "genres", vocabulary=["1", "2", "3"], embedding_dim=2, multi_valued=True, padding_value="-1"
    )
    enc({"genres": tf.constant([[1, -1]])})  # build
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    enc.embedding.set_weights([table])
    enc.weight.set_weights([np.array([[0.0], [10.0], [20.0], [30.0]], np.float32)])
    emb, w = enc({"genres": tf.constant([[1, 3, -1], [-1, -1, -1]], tf.int64)})
    np.testing.assert_allclose(emb.numpy()[0], (table[1] + table[3]) / 2)
    np.testing.assert_allclose(emb.numpy()[1], [0.0, 0.0])  # all padding -> zeros, no NaN
    np.testing.assert_allclose(w.numpy(), [20.0, 0.0])


def test_ragged_multi_valued_input_matches_padded():
    enc = CategoricalEncoder(
        "g", vocabulary=["1", "2"], embedding_dim=2, multi_valued=True, padding_value="-1"
    )
    ragged = tf.ragged.constant([[1, 2], [2]], dtype=tf.int64)
    dense = tf.constant([[1, 2], [2, -1]], tf.int64)
    np.testing.assert_allclose(enc({"g": ragged})[0].numpy(), enc({"g": dense})[0].numpy())


def test_prefix_and_hashing():
    enc = CategoricalEncoder("zip", hash_bins=7, embedding_dim=2, prefix_length=2)
    ids = enc.preprocess({"zip": tf.constant(["12345", "12999", "99999"])}).numpy()
    assert ids[0] == ids[1] and 0 <= ids.min() and ids.max() < 7


def test_title_helpers():
    titles = tf.constant(["Toy Story (1995)", "Heat (1995) ", "unknown", "Se7en, The (1995)"])
    years = title_year(titles).numpy()
    np.testing.assert_allclose(years[[0, 1, 3]], [1995, 1995, 1995])
    assert np.isnan(years[2])
    tokens = title_tokens(titles, 3).numpy().astype(str)
    np.testing.assert_array_equal(tokens[0], ["toy", "story", ""])
    np.testing.assert_array_equal(tokens[3], ["se7en", "the", ""])


def test_numeric_standardises_and_scales_its_vector():
    enc = NumericEncoder("age", embedding_dim=2, mean=30.0, variance=100.0)
    enc({"age": tf.constant([30.0])})
    enc.vector.assign([1.0, -2.0])
    enc.scalar.assign(0.5)
    emb, w = enc({"age": tf.constant([50.0, float("nan")])})
    np.testing.assert_allclose(emb.numpy(), [[2.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(w.numpy(), [1.0, 0.0])


def test_numeric_buckets_with_missing_bucket():
    enc = NumericEncoder("t", embedding_dim=2, boundaries=[1960.0, 1990.0], transform="title_year")
    ids = enc.preprocess({"t": tf.constant(["A (1950)", "B (1975)", "C (1995)", "D"])}).numpy()
    np.testing.assert_array_equal(ids, [0, 1, 2, 3])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"key": "", "vocabulary": ["a"]}, "key"),
        ({"key": "a", "vocabulary": ["a"], "embedding_dim": 0}, "embedding_dim"),
        ({"key": "a"}, "hash_bins"),
        ({"key": "a", "vocabulary": ["a"], "transform": "x"}, "transform"),
    ],
)
def test_categorical_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=f"Received: .*{field}"):
        CategoricalEncoder(**kwargs)


def test_numeric_rejects_unsorted_boundaries():
    with pytest.raises(ValueError, match="Received: boundaries"):
        NumericEncoder("x", boundaries=[2.0, 1.0])


def test_encoders_config_round_trip():
    for enc, features in (
        (
            CategoricalEncoder("t", vocabulary=["toy"], embedding_dim=2, transform="title_tokens"),
            {"t": tf.constant(["Toy Story (1995)"])},
        ),
        (NumericEncoder("x", embedding_dim=2, boundaries=[1.0]), {"x": tf.constant([0.5, 3.0])}),
    ):
        expected = enc(features)
        clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(enc))
        clone(features)
        clone.set_weights(enc.get_weights())
        assert clone.get_config() == enc.get_config()
        for a, b in zip(clone(features), expected, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy())


@pytest.mark.parametrize("vocabulary_size", [50, 1000, 70_000])
def test_multi_valued_pooling_is_the_mean_of_valid_rows(vocabulary_size, monkeypatch):
    """Tiny tables pool by a multi-hot matmul, small ones by `mean_of_rows`, large ones by
    gather: the same numbers and gradients."""
    from tfrec.features import encoders

    used = []
    for name in ("multi_hot_mean", "mean_of_rows"):
        original = getattr(encoders, name)
        monkeypatch.setattr(encoders, name, lambda *a, o=original, n=name: used.append(n) or o(*a))
    vocabulary = [str(i) for i in range(vocabulary_size)]
    encoder = CategoricalEncoder("h", vocabulary=vocabulary, embedding_dim=3, multi_valued=True)
    history = tf.constant([["1", "", "3"], ["", "", ""], ["2", "2", "4"]])
    with tf.GradientTape(persistent=True) as tape:
        emb, weight = encoder({"h": history})
        total = tf.reduce_sum(emb) + tf.reduce_sum(weight)
    table = encoder.embedding.embeddings.numpy()
    rows = [[2, 4], [], [3, 3, 5]]  # ids shift by one: index 0 is the out-of-vocabulary row
    expected = np.stack([table[r].mean(0) if r else np.zeros(3) for r in rows])
    np.testing.assert_allclose(emb.numpy(), expected, rtol=1e-6, atol=1e-7)
    grad = tf.convert_to_tensor(tape.gradient(total, encoder.embedding.embeddings)).numpy()
    assert grad[3].sum() == pytest.approx(3 * 2 / 3)  # id "2" twice in a row of three
    # d total / d row r = sum over rows b of (occurrences of r in b) / (valid ids in b).
    per_row = np.zeros(vocabulary_size + 1)
    per_row[[2, 4]] = 1 / 2
    per_row[3], per_row[5] = 2 / 3, 1 / 3
    np.testing.assert_allclose(grad, np.repeat(per_row[:, None], 3, axis=1), rtol=1e-6)
    weights = tf.convert_to_tensor(tape.gradient(total, encoder.weight.embeddings)).numpy()
    np.testing.assert_allclose(weights[:, 0], per_row, rtol=1e-6)
    expected_path = {50: ["multi_hot_mean"], 1000: ["mean_of_rows"], 70_000: []}
    assert used == expected_path[vocabulary_size]

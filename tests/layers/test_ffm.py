"""Tests for tfrec.layers.ffm: FieldAwareEmbedding and FieldAwareInteraction."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import FieldAwareEmbedding, FieldAwareInteraction

VOCABS = [10, 20, 5]
IDS = np.array([[1, 7, 0], [9, 19, 4]], np.int32)


def _pairwise_ffm(e: np.ndarray) -> np.ndarray:
    """Hand-written definition: sum over i < j of <e[:, i, j], e[:, j, i]>."""
    out = np.zeros((e.shape[0], 1))
    for i in range(e.shape[1]):
        for j in range(i + 1, e.shape[1]):
            out[:, 0] += (e[:, i, j, :] * e[:, j, i, :]).sum(-1)
    return out


def _embedding_with_arange_table(**kwargs) -> FieldAwareEmbedding:
    layer = FieldAwareEmbedding(**kwargs)
    layer(IDS)
    table = np.arange(np.prod(layer.embeddings.shape), dtype=np.float32)
    layer.embeddings.assign(table.reshape(layer.embeddings.shape) / 100.0)
    return layer


def test_interaction_matches_pairwise_sum():
    e = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)
    expected = _pairwise_ffm(e.astype(np.float64))
    np.testing.assert_allclose(FieldAwareInteraction()(e), expected, rtol=1e-5, atol=1e-6)


def test_interaction_hand_example_ignores_diagonal():
    e = np.full((1, 2, 2, 2), 100.0, np.float32)  # diagonal entries must not count
    e[0, 0, 1] = [1.0, 2.0]
    e[0, 1, 0] = [3.0, 4.0]
    np.testing.assert_allclose(FieldAwareInteraction()(e), [[11.0]])
    np.testing.assert_allclose(FieldAwareInteraction()(tf.ones([2, 1, 1, 3])), [[0.0], [0.0]])


def test_embedding_parameter_count_and_lookup():
    layer = _embedding_with_arange_table(vocab_sizes=VOCABS, embedding_dim=4)
    assert layer.count_params() == sum(VOCABS) * 3 * 4  # 420
    out = layer(IDS).numpy()
    assert out.shape == (2, 3, 3, 4)
    table = layer.embeddings.numpy()
    offsets = [0, 10, 30]
    for b in range(2):
        for f in range(3):
            row = table[offsets[f] + IDS[b, f]].reshape(3, 4)
            np.testing.assert_array_equal(out[b, f], row)


def test_embedding_accepts_list_of_ids():
    layer = _embedding_with_arange_table(vocab_sizes=VOCABS, embedding_dim=2)
    stacked = layer(IDS).numpy()
    np.testing.assert_array_equal(layer([IDS[:, f] for f in range(3)]), stacked)
    np.testing.assert_array_equal(layer([IDS[:, f : f + 1] for f in range(3)]), stacked)


def test_shared_vocabulary():
    layer = _embedding_with_arange_table(vocab_sizes=[20], num_fields=3, embedding_dim=2)
    assert layer.embeddings.shape == (20, 6)
    out = layer(IDS).numpy()
    np.testing.assert_array_equal(out[1, 2], layer.embeddings.numpy()[4].reshape(3, 2))


def test_embedding_then_interaction_is_ffm():
    emb = _embedding_with_arange_table(vocab_sizes=VOCABS, embedding_dim=2)
    table, k = emb.embeddings.numpy().astype(np.float64), 2
    rows = IDS + np.array([0, 10, 30])
    expected = np.zeros((2, 1))
    for i in range(3):
        for j in range(i + 1, 3):
            v_ij = table[rows[:, i], j * k : (j + 1) * k]
            v_ji = table[rows[:, j], i * k : (i + 1) * k]
            expected[:, 0] += (v_ij * v_ji).sum(-1)
    np.testing.assert_allclose(FieldAwareInteraction()(emb(IDS)), expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [[[10, 0, 0]], [[0, 20, 0]], [[-1, 0, 0]]])
def test_out_of_range_ids_raise(bad):
    layer = FieldAwareEmbedding(vocab_sizes=VOCABS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="FieldAwareEmbedding"):
        layer(np.array(bad, np.int32))


@pytest.mark.parametrize(
    ("kwargs", "received"),
    [
        ({"vocab_sizes": []}, "vocab_sizes=[]"),
        ({"vocab_sizes": 5}, "vocab_sizes=5"),
        ({"vocab_sizes": [10, 0]}, "vocab_sizes=[10, 0]"),
        ({"vocab_sizes": [10, 20, 5], "num_fields": 2}, "num_fields=2"),
        ({"vocab_sizes": [10], "num_fields": 0}, "num_fields=0"),
        ({"vocab_sizes": [10], "embedding_dim": 0}, "embedding_dim=0"),
    ],
)
def test_embedding_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received.replace("[", r"\[")):
        FieldAwareEmbedding(**kwargs)


def test_invalid_inputs():
    with pytest.raises(ValueError, match=r"Received: ids.shape=\(2, 2\)"):
        FieldAwareEmbedding(vocab_sizes=VOCABS)(IDS[:, :2])
    with pytest.raises(ValueError, match="Received: ids.dtype=float32"):
        FieldAwareEmbedding(vocab_sizes=VOCABS)(IDS.astype(np.float32))
    with pytest.raises(ValueError, match=r"Received: embeddings.shape=\(2, 3, 4, 2\)"):
        FieldAwareInteraction()(tf.ones([2, 3, 4, 2]))


def test_config_roundtrip(config_roundtrip):
    emb = FieldAwareEmbedding(
        vocab_sizes=VOCABS, embedding_dim=3, embeddings_regularizer="l2", name="ffm_emb"
    )
    config_roundtrip(emb, IDS)
    e = np.random.default_rng(1).normal(size=(2, 3, 3, 2)).astype(np.float32)
    config_roundtrip(FieldAwareInteraction(name="ffm"), e)
    bf16 = tf.keras.mixed_precision.Policy("mixed_bfloat16")
    config_roundtrip(FieldAwareInteraction(dtype=bf16), e)
    config_roundtrip(FieldAwareEmbedding(vocab_sizes=VOCABS, dtype=bf16), IDS)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    ids = tf.keras.Input(shape=(3,), dtype=tf.int32, name="ids")
    model = tf.keras.Model(ids, FieldAwareInteraction()(FieldAwareEmbedding(VOCABS, None, 2)(ids)))
    savedmodel_roundtrip(model, IDS)

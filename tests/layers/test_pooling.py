"""Tests for tfrec.layers.pooling: MaskedMeanPooling and ElementwiseProduct."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import ElementwiseProduct, MaskedMeanPooling

EMB = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]],
        [[5.0, 6.0], [7.0, 8.0], [0.0, 0.0]],
        [[9.0, 9.0], [9.0, 9.0], [9.0, 9.0]],
    ],
    np.float32,
)
MASK = np.array([[True, True, False], [False, True, False], [False, False, False]])


def test_masked_mean_by_hand_with_all_masked_row():
    out = MaskedMeanPooling()(EMB, mask=MASK).numpy()
    np.testing.assert_allclose(out, [[2.0, 3.0], [7.0, 8.0], [0.0, 0.0]])
    assert not np.isnan(out).any()


def test_without_mask_is_plain_mean():
    np.testing.assert_allclose(MaskedMeanPooling()(EMB)[0], [3.0, 5.0])


def test_mask_from_embedding_mask_zero():
    embedding = tf.keras.layers.Embedding(10, 2, mask_zero=True)
    ids = np.array([[1, 2, 0], [0, 0, 0]])
    out = MaskedMeanPooling()(embedding(ids)).numpy()
    table = embedding.get_weights()[0]
    np.testing.assert_allclose(out, [(table[1] + table[2]) / 2, [0.0, 0.0]], rtol=1e-6)


def test_other_axis():
    x = np.stack([EMB, 2 * EMB], axis=1)  # [B, 2, L, k]
    mask = np.stack([MASK, MASK], axis=1)
    out = MaskedMeanPooling(axis=2)(x, mask=mask).numpy()
    np.testing.assert_allclose(out[:, 1], 2 * MaskedMeanPooling()(EMB, mask=MASK).numpy())


@pytest.mark.parametrize("axis", [0, 2, -1, 3])
def test_axis_must_be_a_middle_axis(axis):
    with pytest.raises(ValueError, match=f"Received: axis={axis}"):
        MaskedMeanPooling(axis=axis)(EMB, mask=MASK)


def test_invalid_axis_type():
    with pytest.raises(ValueError, match="Received: axis='1'"):
        MaskedMeanPooling(axis="1")


def test_elementwise_product_by_hand():
    a = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    b = np.array([[3.0, 4.0], [2.0, 2.0]], np.float32)
    np.testing.assert_allclose(ElementwiseProduct()([a, b]), [[3.0, 8.0], [-2.0, 1.0]])
    np.testing.assert_allclose(ElementwiseProduct()([a, b, b]), [[9.0, 32.0], [-4.0, 2.0]])


def test_elementwise_product_needs_a_list_of_two():
    with pytest.raises(ValueError, match="Received: input_shape="):
        ElementwiseProduct()([tf.ones([2, 3])])
    with pytest.raises(ValueError, match="Received: input_shape="):
        ElementwiseProduct()(tf.ones([2, 3]))


def test_config_roundtrip(config_roundtrip):
    config_roundtrip(MaskedMeanPooling(name="pool"), EMB, mask=MASK)
    config_roundtrip(ElementwiseProduct(name="gmf"), [EMB[:, 0], EMB[:, 1]])
    bf16 = tf.keras.mixed_precision.Policy("mixed_bfloat16")
    config_roundtrip(ElementwiseProduct(dtype=bf16), [EMB[:, 0], EMB[:, 1]])
    config_roundtrip(MaskedMeanPooling(dtype=bf16), EMB, mask=MASK)


def test_savedmodel_roundtrip(savedmodel_roundtrip):
    emb = tf.keras.Input(shape=(3, 2), name="history")
    mask = tf.keras.Input(shape=(3,), dtype=tf.bool, name="history_mask")
    item = tf.keras.Input(shape=(2,), name="item")
    pooled = MaskedMeanPooling()(emb, mask=mask)
    model = tf.keras.Model([emb, mask, item], ElementwiseProduct()([pooled, item]))
    item_values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
    reloaded = savedmodel_roundtrip(model, [EMB, MASK, item_values])
    expected = [[2.0, 6.0], [21.0, 32.0], [0.0, 0.0]]
    np.testing.assert_allclose(reloaded([EMB, MASK, item_values]), expected)

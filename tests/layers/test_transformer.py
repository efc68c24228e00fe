"""attention_mask, TransformerBlock and SequenceTransformer: masks by hand, a numpy reference of
the whole encoder (SASRec's pre-norm and BERT's post-norm form), causality, padding, attention
maps, config and SavedModel round trips, and constructor errors."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from tfrec.layers import SequenceTransformer, TransformerBlock, attention_mask

B, L, D = 2, 6, 8
X = np.random.default_rng(0).normal(size=(B, L, D)).astype(np.float32)
MASK = np.array([[False, False, True, True, True, True], [True] * L])  # row 0: 2 left pads


def randomize(layer, seed=1):
    """Random weights everywhere (layer norms too, so gamma/beta matter in the reference)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in layer.get_weights()])


def encoder(causal=True, norm_first=True, num_blocks=2, num_heads=2, **kwargs):
    layer = SequenceTransformer(L, num_blocks, num_heads, dropout=0.0, causal=causal,
                                norm_first=norm_first, activation="relu" if norm_first else "gelu",
                                **kwargs)  # fmt: skip
    layer(X, MASK)
    randomize(layer)
    return layer


# ------------------------------------------------------------------ numpy reference


def layer_norm(x, gamma, beta):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * gamma + beta


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(-1, keepdims=True)


def block_reference(block, x, allowed):
    """One block, by hand: multi-head attention, feed-forward, residuals and layer norms."""
    att = block.attention
    wq, bq = att._query_dense.kernel.numpy(), att._query_dense.bias.numpy()
    wk, bk = att._key_dense.kernel.numpy(), att._key_dense.bias.numpy()
    wv, bv = att._value_dense.kernel.numpy(), att._value_dense.bias.numpy()
    wo, bo = att._output_dense.kernel.numpy(), att._output_dense.bias.numpy()
    n1 = [v.numpy() for v in block.norm_attention.weights]
    n2 = [v.numpy() for v in block.norm_ff.weights]
    w1, b1 = block.hidden.kernel.numpy(), block.hidden.bias.numpy()
    w2, b2 = block.output_dense.kernel.numpy(), block.output_dense.bias.numpy()

    def attend(query, keys):
        q = np.einsum("bld,dhk->blhk", query, wq) + bq
        k = np.einsum("bld,dhk->blhk", keys, wk) + bk
        v = np.einsum("bld,dhk->blhk", keys, wv) + bv
        scores = np.einsum("blhk,bmhk->bhlm", q, k) / np.sqrt(q.shape[-1])
        weights = softmax(np.where(allowed[:, None], scores, -1e9))
        out = np.einsum("bhlm,bmhk->blhk", weights, v)
        return np.einsum("blhk,hkd->bld", out, wo) + bo, weights

    def feed_forward(x):
        hidden = x @ w1 + b1
        if block.activation == "relu":
            hidden = np.maximum(hidden, 0)
        else:  # exact GELU
            hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
        return hidden @ w2 + b2

    if block.norm_first:  # SASRec: Q = LN(x); x = Q + MHA(Q, x); x = x + FF(LN(x))
        query = layer_norm(x, *n1)
        attended, weights = attend(query, x)
        x = query + attended
        return x + feed_forward(layer_norm(x, *n2)), weights
    attended, weights = attend(x, x)  # BERT: x = LN(x + MHA(x)); x = LN(x + FF(x))
    x = layer_norm(x + attended, *n1)
    return layer_norm(x + feed_forward(x), *n2), weights


def encoder_reference(layer, x, mask):
    """SequenceTransformer by hand: scaled items + positions, masked blocks, final norm."""
    keep = mask[..., None].astype(np.float64)
    allowed = mask[:, None, :] & (np.tril(np.ones((L, L), bool)) if layer.causal else True)
    norm = [v.numpy() for v in layer.norm.weights]
    positions = layer.positions.numpy()
    if layer.norm_first:
        x = (x * np.sqrt(x.shape[-1]) + positions) * keep
    else:
        x = layer_norm((x + positions) * keep, *norm)
    maps = []
    for block in layer.blocks:
        x, weights = block_reference(block, x, allowed)
        x, maps = x * keep, [*maps, weights]
    if layer.norm_first:
        x = layer_norm(x, *norm) * keep
    return x, maps


# ------------------------------------------------------------------ tests


def test_attention_mask_by_hand():
    mask = tf.constant([[False, True, True], [True, True, True]])
    t, f = True, False
    np.testing.assert_array_equal(
        attention_mask(mask, causal=True),
        [[[f, f, f], [f, t, f], [f, t, t]], [[t, f, f], [t, t, f], [t, t, t]]],
    )
    np.testing.assert_array_equal(
        attention_mask(mask, causal=False),
        [[[f, t, t], [f, t, t], [f, t, t]], [[t, t, t], [t, t, t], [t, t, t]]],
    )


@pytest.mark.parametrize(
    ("causal", "norm_first"), [(True, True), (False, False), (True, False), (False, True)]
)
def test_encoder_equals_the_numpy_reference(causal, norm_first):
    layer = encoder(causal, norm_first)
    expected, maps = encoder_reference(layer, X.astype(np.float64), MASK)
    np.testing.assert_allclose(layer(X, MASK), expected, rtol=1e-4, atol=1e-4)
    got = layer.attention_maps(X, MASK)
    assert len(got) == 2 and got[0].shape == (B, 2, L, L)
    for block_map, reference in zip(got, maps, strict=True):
        real = MASK[:, None, :, None]  # rows of padding queries are never used
        np.testing.assert_allclose(np.where(real, block_map, 0), np.where(real, reference, 0),
                                   atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("kind", ["block", "encoder"])
def test_causal_positions_ignore_the_future_and_bidirectional_ones_do_not(kind):
    future = 4
    changed = X.copy()
    changed[:, future] += 1.0
    for causal in (True, False):
        if kind == "block":
            layer = TransformerBlock(num_heads=2, dropout=0.0)
            mask = attention_mask(tf.constant(MASK), causal)
            layer(X, mask)
            randomize(layer)

            def run(x, layer=layer, mask=mask):
                return layer(x, mask).numpy()
        else:
            layer = encoder(causal)

            def run(x, layer=layer):
                return layer(x, MASK).numpy()

        before, after = run(X), run(changed)
        earlier = np.abs(after[:, :future] - before[:, :future])[MASK[:, :future]]
        later = np.abs(after[:, future:] - before[:, future:]).max(axis=-1)
        assert (later > 1e-3).all(), (kind, causal)  # the changed position and its successors
        if causal:
            assert earlier.max() < 1e-6, kind
        else:
            assert (earlier.max(axis=-1) > 1e-3).all(), kind


@pytest.mark.parametrize("causal", [True, False])
def test_padding_outputs_zeros_and_padding_inputs_change_nothing(causal):
    for norm_first in (True, False):
        layer = encoder(causal, norm_first)
        out = layer(X, MASK).numpy()
        assert (out[~MASK] == 0).all()
        assert np.abs(out[MASK]).min(axis=-1).max() > 0
        noisy = X.copy()
        noisy[~MASK] = 100.0  # whatever sits under padding
        np.testing.assert_allclose(layer(noisy, MASK), out, atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_maps_weigh_only_allowed_keys(causal):
    layer = encoder(causal)
    allowed = attention_mask(tf.constant(MASK), causal).numpy()[:, None]  # [B, 1, L, L]
    for weights in layer.attention_maps(X, MASK):
        weights = weights.numpy()
        rows = np.broadcast_to(MASK[:, None, :, None], weights.shape)[..., 0]  # real queries
        np.testing.assert_allclose((weights * allowed).sum(-1)[rows], 1.0, rtol=1e-5)
        assert np.abs(np.where(allowed, 0, weights)).max(-1)[rows].max() < 1e-7
        if not causal:  # the oldest real item looks at the newest one
            assert (weights[:, :, 2, -1] > 1e-3).all() and (weights[:, :, 0, -1] > 1e-3).all()
    # Inference only: dropout never changes the maps.
    dropping = SequenceTransformer(L, 1, 1, dropout=0.5, causal=causal)
    dropping(X, MASK)
    np.testing.assert_array_equal(dropping.attention_maps(X, MASK)[0],
                                  dropping.attention_maps(X, MASK)[0])  # fmt: skip


def test_dropout_is_active_only_in_training():
    layer = SequenceTransformer(L, 1, 1, dropout=0.5, causal=True)
    inference = layer(X, MASK).numpy()
    np.testing.assert_array_equal(layer(X, MASK, training=False), inference)
    assert np.abs(layer(X, MASK, training=True).numpy() - inference).max() > 1e-3


def test_block_config_round_trip(config_roundtrip):
    block = TransformerBlock(num_heads=2, dropout=0.1, activation="gelu", norm_first=False,
                             ff_multiplier=2, name="b")  # fmt: skip
    clone = config_roundtrip(block, X, attention_mask(tf.constant(MASK), True))
    assert (clone.num_heads, clone.activation, clone.norm_first, clone.ff_multiplier) == (
        2, "gelu", False, 2
    )  # fmt: skip
    assert clone.hidden.units == 2 * D


@pytest.mark.parametrize("causal", [True, False])
def test_encoder_config_round_trip(config_roundtrip, causal):
    layer = encoder(causal, norm_first=causal)
    clone = config_roundtrip(layer, X, MASK)
    assert clone.causal is causal and clone.num_blocks == 2 and clone.max_length == L


def test_encoder_savedmodel_round_trip(savedmodel_roundtrip):
    """Regression: the attention weights were built lazily and Keras' loader left them fresh."""
    x = tf.keras.Input((L, D), name="x")
    mask = tf.keras.Input((L,), dtype=tf.bool, name="mask")
    layer = SequenceTransformer(L, 1, 2, dropout=0.1, causal=True, name="encoder")
    model = tf.keras.Model({"x": x, "mask": mask}, layer(x, mask))
    randomize(layer)
    savedmodel_roundtrip(model, {"x": X, "mask": MASK}, atol=1e-5)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: TransformerBlock(num_heads=0), "Received: num_heads=0"),
        (lambda: TransformerBlock(num_heads=True), "Received: num_heads=True"),
        (lambda: TransformerBlock(ff_multiplier=1.5), "Received: ff_multiplier=1.5"),
        (lambda: TransformerBlock(dropout=1.0), r"`dropout` must be in \[0.0, 1.0\). Received"),
        (lambda: TransformerBlock(dropout=True), "Received: dropout=True"),
        (lambda: SequenceTransformer(max_length=0), "Received: max_length=0"),
        (lambda: SequenceTransformer(num_blocks=-1), "Received: num_blocks=-1"),
        (lambda: SequenceTransformer(num_heads=0), "Received: num_heads=0"),
        (lambda: SequenceTransformer(dropout=-0.1), "Received: dropout=-0.1"),
    ],
)
def test_constructor_errors(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_width_must_divide_into_heads():
    with pytest.raises(ValueError, match="width 8 must be divisible by num_heads=3. Received"):
        TransformerBlock(num_heads=3)(X, attention_mask(tf.constant(MASK), True))

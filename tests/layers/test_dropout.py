"""StatelessDropout: the drop rate, the 1/(1-rate) scaling, inference identity, config."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers import StatelessDropout


def test_drops_at_the_rate_and_rescales_the_rest():
    layer = StatelessDropout(0.25)
    out = layer(tf.ones([400, 250]), training=True).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.01  # 100,000 draws: std 0.0014
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    odd = layer(tf.ones([400, 251]), training=True).numpy()  # an odd width: 32-bit draws
    assert abs((odd != 0).mean() - 0.75) < 0.01
    np.testing.assert_allclose(odd[odd != 0], 1 / 0.75, rtol=1e-6)


def test_sixteen_bit_mask_is_unbiased_for_rates_off_the_grid():
    # rate 0.1 is 6553.6 / 2^16: 6554 of the 2^16 values drop, and kept units are scaled by
    # 2^16 / (2^16 - 6554) so that the mean output equals the input.
    layer = StatelessDropout(0.1)
    out = layer(tf.ones([1000, 1000]), training=True).numpy()
    np.testing.assert_allclose(out[out != 0], 65536 / (65536 - 6554), rtol=1e-6)
    assert abs((out == 0).mean() - 6554 / 65536) < 0.0015  # 10^6 draws: std 0.0003
    assert abs(out.mean() - 1.0) < 0.002


def test_fresh_mask_each_call_and_identity_in_inference():
    layer = StatelessDropout(0.5)
    x = tf.ones([64, 64])
    first, second = layer(x, training=True), layer(x, training=True)
    assert (first.numpy() != second.numpy()).any()
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(StatelessDropout(0.0)(x, training=True), x)


def test_gradient_flows_only_through_kept_units():
    layer = StatelessDropout(0.5)
    x = tf.ones([32, 32])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(grad, np.where(out.numpy() != 0, 2.0, 0.0))


def test_rate_is_validated_and_config_round_trips(config_roundtrip):
    with pytest.raises(ValueError, match="Received: rate=1.0"):
        StatelessDropout(1.0)
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(StatelessDropout(0.3)))
    assert type(clone) is StatelessDropout and clone.rate == 0.3

"""FrequencyEstimator: the streaming recurrence of Yi et al. (2019) step by step."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.tasks import FrequencyEstimator


def test_follows_the_streaming_recurrence():
    estimator = FrequencyEstimator(num_buckets=4096, alpha=0.5)
    ids = tf.constant(["a", "b"])
    assert len(set(estimator.buckets(ids).numpy().tolist())) == 2
    estimator(ids, training=True)  # step 1: both seen first, gap = 1
    estimator(tf.constant(["a"]), training=True)  # step 2: a's gap 0.5 * 1 + 0.5 * 1 = 1
    got = estimator(ids, training=True).numpy()  # step 3: b's gap 0.5 * 1 + 0.5 * 2 = 1.5
    np.testing.assert_allclose(got, [1.0, 1 / 1.5], rtol=1e-6)
    np.testing.assert_allclose(estimator(ids).numpy(), got)  # reading does not update
    assert int(estimator.step.numpy()) == 3


def test_rare_items_get_low_probabilities():
    estimator = FrequencyEstimator(num_buckets=4096, alpha=0.1)
    for step in range(200):  # "a" in every batch, "b" in every 4th
        batch = ["a", "b"] if step % 4 == 0 else ["a"]
        estimator(tf.constant(batch), training=True)
    got = estimator(tf.constant(["a", "b", "never"])).numpy()
    np.testing.assert_allclose(got[:2], [1.0, 0.25], rtol=0.05)
    assert got[2] == 1.0  # a bucket never seen reads as 1 / max(0, 1)


def test_integer_ids_hash_like_their_text():
    estimator = FrequencyEstimator(num_buckets=97)
    np.testing.assert_array_equal(
        estimator.buckets(tf.constant([242, 7], tf.int64)),
        estimator.buckets(tf.constant(["242", "7"])),
    )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_buckets": 0}, "`num_buckets` must be a positive integer. Received: num_buckets=0"),
        ({"num_buckets": 2.5}, "Received: num_buckets=2.5"),
        ({"alpha": 0.0}, r"`alpha` must be in \(0, 1\]. Received: alpha=0.0"),
        ({"alpha": 1.5}, "Received: alpha=1.5"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        FrequencyEstimator(**kwargs)


def test_config_round_trip(config_roundtrip):
    estimator = FrequencyEstimator(num_buckets=64, alpha=0.25, name="frequency")
    estimator(tf.constant(["x", "y"]), training=True)
    clone = config_roundtrip(estimator, tf.constant(["x", "y", "z"]))
    assert (clone.num_buckets, clone.alpha) == (64, 0.25)
    assert int(clone.step.numpy()) == 1  # the state travels with the weights

"""CatalogueSoftmax: full softmax = sparse softmax cross-entropy by hand; the sampled softmax's
candidates, log-Q subtraction and masked accidental hits; the unigram proposal."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.tasks import CatalogueSoftmax


def _cross_entropy(logits, columns, excluded=None):
    logits = np.asarray(logits, np.float64).copy()
    if excluded is not None:
        logits[excluded] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_norm - logits[np.arange(len(columns)), columns]))


def test_full_softmax_is_sparse_cross_entropy():
    task = CatalogueSoftmax(num_items=4)
    assert task.objective == "catalogue"
    items, columns, log_q = task.candidates(tf.constant([1, 3]))
    np.testing.assert_array_equal(items, [0, 1, 2, 3])
    np.testing.assert_array_equal(columns, [1, 3])
    assert log_q is None
    logits = np.array([[1.0, 2.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]], np.float32)
    loss = task(tf.constant(logits), columns, log_q)
    by_hand = np.mean(
        [
            np.log(np.e + np.exp(2) + 1 + np.exp(-1)) - 2,
            np.log(2 * np.exp(0.5) + np.exp(3) + 1) - 0,
        ]
    )
    assert float(loss) == pytest.approx(by_hand, rel=1e-6)


def test_sampled_uniform_candidate_layout():
    task = CatalogueSoftmax(num_items=10, num_sampled=5)
    targets = tf.constant([2, 7, 2])
    items, columns, log_q = task.candidates(targets, seed=1)
    items = items.numpy()
    assert items.shape == (8,) and items.dtype == np.int64
    np.testing.assert_array_equal(items[:3], [2, 7, 2])  # row r's target is column r
    assert ((items[3:] >= 0) & (items[3:] < 10)).all()
    np.testing.assert_array_equal(columns, [0, 1, 2])
    np.testing.assert_allclose(log_q, np.full(8, np.log(5 / 10)), rtol=1e-6)  # 5 draws, p 1/10


def test_unigram_proposal_from_item_counts():
    task = CatalogueSoftmax(num_items=4, num_sampled=3, sampling="unigram")
    task.set_item_counts([0, 1, 2, 5])  # an item never seen counts as 1
    p = np.array([1, 1, 2, 5]) / 9
    np.testing.assert_allclose(task.log_probability.numpy(), np.log(p), rtol=1e-6)
    items, _, log_q = task.candidates(tf.constant([0]), seed=2)
    np.testing.assert_allclose(log_q, np.log(3 * p[items.numpy()]), rtol=1e-5)
    many = CatalogueSoftmax(num_items=4, num_sampled=40_000, sampling="unigram")
    many.set_item_counts([0, 1, 2, 5])
    drawn = many.candidates(tf.constant([0]), seed=3)[0].numpy()[1:]
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / drawn.size, p, atol=0.01)


def test_sampled_loss_subtracts_log_q_and_masks_accidental_hits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 8)).astype(np.float32)
    items = np.array([2, 7, 2, 5, 7, 1, 2, 9])  # 3 targets, then 5 draws
    log_q = rng.normal(size=8).astype(np.float32)
    columns = np.array([0, 1, 2])
    task = CatalogueSoftmax(num_items=10, num_sampled=5)
    loss = task(tf.constant(logits), tf.constant(columns), tf.constant(log_q), tf.constant(items))
    # Row 0 (item 2, column 0) must not see columns 2 and 6 (item 2 again) as negatives; row 1
    # (item 7) not column 4; row 2 (item 2, column 2) not columns 0 and 6.
    excluded = np.zeros((3, 8), bool)
    excluded[0, [2, 6]] = excluded[1, 4] = excluded[2, [0, 6]] = True
    expected = _cross_entropy(logits - log_q, columns, excluded)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # Without the items nothing is masked; a per-row log_q [R, C] works the same way.
    unmasked = task(tf.constant(logits), tf.constant(columns), tf.constant(log_q))
    assert float(unmasked) == pytest.approx(_cross_entropy(logits - log_q, columns), rel=1e-5)
    per_row = task(tf.constant(logits), columns, tf.constant(np.tile(log_q, (3, 1))), items)
    assert float(per_row) == pytest.approx(expected, rel=1e-5)


def test_set_item_counts_errors():
    task = CatalogueSoftmax(num_items=3, num_sampled=2, sampling="unigram")
    for counts in ([1, 2], [1, -1, 2], [1, np.nan, 2]):
        with pytest.raises(ValueError, match="`counts` must be 3 finite non-negative numbers"):
            task.set_item_counts(counts)
    with pytest.raises(ValueError, match=r"Received: shape=\(2,\)"):
        task.set_item_counts([1, 2])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_items": 0}, "`num_items` must be an integer >= 1. Received: num_items=0"),
        ({"num_items": True}, "Received: num_items=True"),
        ({"num_sampled": -1}, "`num_sampled` must be an integer >= 0. Received: num_sampled=-1"),
        ({"num_sampled": 2.0}, "Received: num_sampled=2.0"),
        ({"sampling": "zipf"}, r"`sampling` must be one of .*Received: sampling='zipf'"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        CatalogueSoftmax(**{"num_items": 5, **kwargs})


def test_activation_is_the_logits():
    logits = tf.constant([[1.0, -2.0]])
    np.testing.assert_array_equal(CatalogueSoftmax(2).activation(logits), logits)


@pytest.mark.parametrize("sampled", [False, True])
def test_config_round_trip(sampled, config_roundtrip):
    task = CatalogueSoftmax(num_items=5, num_sampled=3 if sampled else 0, sampling="unigram")
    task.set_item_counts([1, 2, 3, 4, 5])
    logits = tf.constant(np.arange(15, dtype=np.float32).reshape(3, 5) / 7)
    if sampled:
        extra = (tf.constant(np.linspace(-1, 1, 5, dtype=np.float32)), tf.constant([0, 4, 0, 2, 3]))
    else:
        extra = ()
    clone = config_roundtrip(task, logits, tf.constant([0, 1, 2]), *extra)
    expected = (5, 3 if sampled else 0, "unigram")
    assert (clone.num_items, clone.num_sampled, clone.sampling) == expected
    np.testing.assert_allclose(clone.log_probability.numpy(), task.log_probability.numpy())

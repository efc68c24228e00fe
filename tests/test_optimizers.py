"""LazyAdam against Adam's rule worked out by hand, and the `optimizer` setting of fit."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.models import build_model
from tfrec.optimizers import DenseAdam, LazyAdam, get_optimizer
from tfrec.training import fit, training_dataset, training_inputs

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def _sparse(values, indices, rows=5):
    values = tf.constant(values, tf.float32)
    return tf.IndexedSlices(values, tf.constant(indices), tf.constant([rows, values.shape[1]]))


def _adam_row(w, m, v, g, step):
    """One Adam step for one row, by hand (tf.keras' epsilon-hat form)."""
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    alpha = LR * np.sqrt(1 - B2**step) / (1 - B1**step)
    return w - alpha * m / (np.sqrt(v) + EPS), m, v


def test_sparse_steps_touch_only_the_batch_rows_and_follow_adam():
    start = np.arange(10, dtype=np.float32).reshape(5, 2) / 10
    table = tf.Variable(start)
    opt = LazyAdam(LR, B1, B2, EPS)
    # Step 1: row 1 twice (its gradients add up) and row 3.
    opt.apply_gradients([(_sparse([[1.0, 2.0], [0.5, 0.5], [-1.0, 4.0]], [1, 3, 1]), table)])
    # Step 2: rows 3 and 4 only; row 1 keeps its moments untouched (lazy).
    opt.apply_gradients([(_sparse([[2.0, -2.0], [1.0, 1.0]], [3, 4]), table)])

    want = start.astype(np.float64).copy()
    m, v = np.zeros_like(want), np.zeros_like(want)
    for step, grads in ((1, {1: [0.0, 6.0], 3: [0.5, 0.5]}), (2, {3: [2.0, -2.0], 4: [1, 1]})):
        for row, g in grads.items():
            want[row], m[row], v[row] = _adam_row(want[row], m[row], v[row], np.array(g), step)
    np.testing.assert_allclose(table.numpy(), want, rtol=1e-5, atol=1e-6)
    # Rows 0 and 2 were never in a batch: weights unchanged (plain Adam would leave them too,
    # but it would keep moving row 1 at step 2 on its stale momentum).
    np.testing.assert_array_equal(table.numpy()[[0, 2]], start[[0, 2]])
    slots = {s.name.split("/")[-2]: s.numpy() for s in opt.variables[1:]}  # "Adam/m/<var>:0"
    np.testing.assert_allclose(slots["m"], m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(slots["v"], v, rtol=1e-4)  # float32 (1 - beta_2)


def test_plain_adam_moves_rows_outside_the_batch_which_lazy_adam_does_not():
    tables = [tf.Variable(tf.zeros([3, 1])) for _ in range(2)]
    for opt, table in zip((tf.keras.optimizers.Adam(LR), LazyAdam(LR)), tables, strict=True):
        opt.apply_gradients([(_sparse([[1.0]], [0], rows=3), table)])
        opt.apply_gradients([(_sparse([[1.0]], [2], rows=3), table)])
    adam, lazy = (t.numpy()[0, 0] for t in tables)
    assert adam < lazy < 0  # Adam's second step moved row 0 again; LazyAdam's did not


def test_dense_gradients_follow_adam_in_one_fused_kernel():
    init = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    grads = [np.random.default_rng(i).normal(size=(4, 3)).astype(np.float32) for i in range(3)]
    # By hand, with the betas as the kernel holds them (float32), in float64.
    b1, b2 = float(np.float32(B1)), float(np.float32(B2))
    w, m, v = init.astype(np.float64), np.zeros((4, 3)), np.zeros((4, 3))
    for step, g in enumerate(grads, start=1):
        m, v = m + (g - m) * (1 - b1), v + (g * g - v) * (1 - b2)
        w = w - LR * np.sqrt(1 - b2**step) / (1 - b1**step) * m / (np.sqrt(v) + EPS)
    keras = tf.Variable(init)
    reference = tf.keras.optimizers.Adam(LR)
    for g in grads:
        reference.apply_gradients([(tf.constant(g), keras)])
    for opt in (DenseAdam(LR), LazyAdam(LR)):
        var = tf.Variable(init)
        update = tf.function(lambda g, opt=opt, var=var: opt.apply_gradients([(g, var)]))
        for g in grads:
            update(tf.constant(g))
        ops = {op.type for op in update.get_concrete_function(tf.constant(grads[0])).graph
               .get_operations()}  # fmt: skip
        assert "ResourceApplyAdam" in ops  # one fused kernel, not tf.keras' ten ops
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-6, atol=1e-7)
        # tf.keras computes (1 - beta_2) in float64 first: 1.3e-5 apart relatively.
        np.testing.assert_allclose(var.numpy(), keras.numpy(), rtol=1e-4)


def test_config_round_trip_and_saved_model_restores_lazy_adam(tmp_path):
    opt = LazyAdam(0.01, beta_2=0.99, epsilon=1e-6)
    again = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt))
    assert type(again) is LazyAdam and again.get_config() == opt.get_config()

    inputs = tf.keras.Input([2], dtype=tf.int32)
    embedded = tf.keras.layers.Embedding(50, 4)(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(tf.keras.layers.Flatten()(embedded)))
    model.compile(LazyAdam(0.01), loss="mse")
    x, y = np.array([[1, 2], [3, 4]], np.int32), np.array([[1.0], [0.0]], np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m")
    loaded = tf.keras.models.load_model(tmp_path / "m")  # registered: no custom_objects
    assert type(loaded.optimizer) is LazyAdam
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_amsgrad_and_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="amsgrad=True"):
        LazyAdam(amsgrad=True)
    with pytest.raises(ValueError, match=r"optimizer='sgd'.*lazy_adam"):
        get_optimizer("sgd", 0.1)
    assert isinstance(get_optimizer("adagrad", 0.1), tf.keras.optimizers.Adagrad)


def test_fit_trains_with_lazy_adam(tiny_movielens):
    data = SplitData.from_movielens(tiny_movielens)
    model = build_model("deepfm", data, embedding_dim=4, dnn_units=(8,), history_length=3)
    batches = list(training_dataset(model, data, num_negatives=2, batch_size=256, seed=1))
    zero = tf.constant([0])
    model(training_inputs(model, data).gather(zero, zero, zero))

    def mean_loss():
        return float(np.mean([model.compute_loss(b).numpy() for b in batches]))

    before = mean_loss()
    history = fit(
        model,
        data,
        epochs=2,
        batch_size=256,
        num_negatives=2,
        learning_rate=1e-2,
        optimizer="lazy_adam",
        patience=2,
        verbose=0,
    )
    assert type(model.optimizer) is LazyAdam
    assert np.isfinite(history.history["loss"]).all()
    assert mean_loss() < before  # on the same batches, after training


def test_dense_adam_equals_keras_adam_on_sparse_gradients():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(10, 3)).astype(np.float32)
    keras_table, dense_table = tf.Variable(start), tf.Variable(start)
    keras_adam, dense_adam = tf.keras.optimizers.Adam(0.01), DenseAdam(0.01)
    for _ in range(5):  # repeated indices: the sparse path must sum them too
        rows = tf.constant(rng.integers(0, 10, 8))
        values = tf.constant(rng.normal(size=(8, 3)).astype(np.float32))
        grad = tf.IndexedSlices(values, rows, tf.constant([10, 3]))
        keras_adam.apply_gradients([(grad, keras_table)])
        dense_adam.apply_gradients([(grad, dense_table)])
    np.testing.assert_allclose(dense_table.numpy(), keras_table.numpy(), atol=1e-6)
    assert type(get_optimizer("adam", 1e-3)) is DenseAdam
    clone = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(dense_adam))
    assert type(clone) is DenseAdam

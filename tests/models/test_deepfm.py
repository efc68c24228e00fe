"""DeepFM: the logit is linear + FM + DNN, it learns, and it round-trips through SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import DeepFM, build_model


@pytest.fixture(scope="module")
def batch(tiny_data):
    model = build_model("deepfm", tiny_data.example_table(), embedding_dim=4, dnn_units=(8,))
    ds = tiny_data.dataset(model, num_negatives=2, batch_size=64, seed=0)
    return model, next(iter(ds))


def test_logit_is_sum_of_linear_fm_and_dnn_heads(batch):
    model, features = batch
    logits = model(features).numpy()
    embeddings, weights = model.fields(features)
    e, w = embeddings.numpy(), weights.numpy()
    pairwise = sum(
        (e[:, i, :] * e[:, j, :]).sum(-1)
        for i in range(e.shape[1])
        for j in range(i + 1, e.shape[1])
    )
    linear = w.sum(1) + model.linear.get_weights()[0]
    deep = model.dnn(tf.reshape(embeddings, [e.shape[0], -1])).numpy()[:, 0]
    np.testing.assert_allclose(logits, linear + pairwise + deep, rtol=1e-4, atol=1e-5)


def test_training_lowers_loss_and_beats_random(tiny_data):
    model = build_model("deepfm", tiny_data.example_table(), embedding_dim=8, dnn_units=(16,))
    model.compile(tf.keras.optimizers.Adam(1e-2))
    ds = tiny_data.dataset(model, num_negatives=2, batch_size=128, seed=0)
    history = model.fit(ds, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["auc"][-1] > 0.7
    score_fn = tiny_data.score_fn(model, "test")
    sampled = tiny_data.evaluate(score_fn, "test", protocols=("sampled",), num_negatives=39)
    # Random ranking of the target among 1 + 39 candidates gives HR@10 = 10 / 40 = 0.25.
    assert sampled["sampled"]["hr@10"] > 0.4


def test_retrieval_task_adds_a_loss(batch):
    model, features = batch
    with_retrieval = DeepFM.from_config({**model.get_config(), "retrieval_weight": 1.0})
    with_retrieval(features)
    with_retrieval.set_weights(model.get_weights())
    plain = model.compute_loss(features).numpy()
    assert with_retrieval.compute_loss(features).numpy() > plain


def test_invalid_hyperparameters_are_named(batch):
    model, _ = batch
    config = model.get_config()
    for name, value in (
        ("dnn_units", []),
        ("dropout", 1.5),
        ("l2", -1.0),
        ("retrieval_weight", -1),
    ):
        with pytest.raises(ValueError, match=f"Received: {name}"):
            DeepFM.from_config({**config, name: value})


def test_config_and_savedmodel_round_trip(batch, tmp_path):
    model, features = batch
    expected = model(features).numpy()
    clone = DeepFM.from_config(model.get_config())
    clone(features)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), expected, rtol=1e-5)
    revived = tf.keras.layers.deserialize(tf.keras.layers.serialize(model))
    assert type(revived) is DeepFM and revived.get_config() == model.get_config()
    model.save(tmp_path / "deepfm")
    reloaded = tf.keras.models.load_model(tmp_path / "deepfm", compile=False)
    assert type(reloaded) is DeepFM
    np.testing.assert_allclose(reloaded(features).numpy(), expected, rtol=1e-5)
    loaded = tf.saved_model.load(str(tmp_path / "deepfm"))
    np.testing.assert_allclose(loaded(features, training=False).numpy(), expected, rtol=1e-5)

"""Tests for tfrec.models.ncf (GMF, NCF MLP, NeuMF) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import GMF, NCFMLP, NeuMF, build_model
from tfrec.towers import RECENT_MOVIES

IDS = {"user": ("user_id",), "movie": ("movie_id",)}


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])


def _ids(tower, values):
    encoder = tower.encoders[0]
    return np.array([encoder.vocabulary.index(v) + 1 for v in values])


def _id_embeddings(model, features, user_tower=None, movie_tower=None):
    user_tower = user_tower or model.user_tower
    movie_tower = movie_tower or model.movie_tower
    p = user_tower.encoders[0].embedding.embeddings.numpy()[_ids(user_tower, features["user_id"])]
    q = movie_tower.encoders[0].embedding.embeddings.numpy()
    return p, q[_ids(movie_tower, features["movie_id"])]


def _relu_mlp(x, weights):
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        x = np.maximum(x @ kernel + bias, 0.0)
    return x


def _trained(model, features):
    model(features)
    _randomize(model, seed=len(model.weights))
    return model


def test_gmf_is_the_weighted_elementwise_product(small_towers, features):
    model = _trained(GMF(*small_towers(3, **IDS)), features)
    p, q = _id_embeddings(model, features)
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(model(features), (p * q) @ kernel[:, 0] + bias[0], rtol=1e-5)


def test_mlp_is_a_relu_tower_on_the_concatenated_embeddings(small_towers, features):
    model = _trained(NCFMLP(*small_towers(3, **IDS), mlp_units=(6, 4)), features)
    p, q = _id_embeddings(model, features)
    hidden = _relu_mlp(np.concatenate([p, q], axis=1), model.mlp.get_weights())
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(model(features), hidden @ kernel[:, 0] + bias[0], rtol=1e-4)


def test_neumf_from_pretrained_is_the_alpha_mix(small_towers, features):
    gmf = _trained(GMF(*small_towers(3, **IDS)), features)
    mlp = _trained(NCFMLP(*small_towers(5, **IDS), mlp_units=(6, 4)), features)
    neumf = NeuMF.from_pretrained(gmf, mlp, alpha=0.3)
    expected = 0.3 * gmf(features).numpy() + 0.7 * mlp(features).numpy()
    np.testing.assert_allclose(neumf(features), expected, rtol=1e-5, atol=1e-5)
    # Separate embeddings: each row is the GMF row (k=3) followed by the MLP row (k=5).
    assert neumf.gmf_dim == 3 and neumf.user_tower.embedding_dim == 8
    rows = neumf.user_tower.encoders[0].embedding.embeddings.numpy()
    np.testing.assert_array_equal(rows[:, :3], gmf.user_tower.encoders[0].embedding.embeddings)
    np.testing.assert_array_equal(rows[:, 3:], mlp.user_tower.encoders[0].embedding.embeddings)
    # The new model owns copies: changing it leaves the pretrained models untouched.
    before = gmf(features).numpy()
    neumf.user_tower.set_weights([np.zeros_like(w) for w in neumf.user_tower.get_weights()])
    np.testing.assert_allclose(gmf(features), before)


def test_from_pretrained_rejects_bad_inputs(small_towers, features):
    gmf = GMF(*small_towers(3, **IDS))
    mlp = _trained(NCFMLP(*small_towers(3, **IDS), mlp_units=(4,)), features)
    with pytest.raises(ValueError, match="trained models"):
        NeuMF.from_pretrained(gmf, mlp)
    gmf(features)
    with pytest.raises(ValueError, match="Received: alpha=1.5"):
        NeuMF.from_pretrained(gmf, mlp, alpha=1.5)
    with pytest.raises(TypeError, match="mlp=GMF"):
        NeuMF.from_pretrained(gmf, gmf)
    other = _trained(
        NCFMLP(*small_towers(3, user=("user_id", "user_gender"), movie=IDS["movie"])), features
    )
    with pytest.raises(ValueError, match="same fields"):
        NeuMF.from_pretrained(gmf, other)


def test_neumf_splits_each_embedding_between_the_branches(small_towers, features):
    model = _trained(NeuMF(*small_towers(5, **IDS), gmf_dim=2, mlp_units=(4,)), features)
    p, q = _id_embeddings(model, features)
    hidden = np.concatenate(
        [
            p[:, :2] * q[:, :2],
            _relu_mlp(np.concatenate([p[:, 2:], q[:, 2:]], axis=1), model.mlp.get_weights()),
        ],
        axis=1,
    )
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(
        model(features), hidden @ kernel[:, 0] + bias[0], rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="Received: gmf_dim=5"):
        NeuMF(*small_towers(5, **IDS), gmf_dim=5)


def test_first_order_tables_are_frozen_and_every_trainable_variable_learns(
    small_towers, features, ranking_table
):
    model = NeuMF(*small_towers(6, **IDS), gmf_dim=3, mlp_units=(4,))
    model(features)
    frozen = {
        id(v)
        for tower in (model.user_tower, model.movie_tower)
        for v in tower.encoders[0].weight.weights
    }
    assert frozen and not frozen & {id(v) for v in model.trainable_variables}
    batch = dict(features, label=ranking_table["label"][:16])
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)


def test_history_option_adds_the_recent_movies_to_the_user_vector(ranking_table, features):
    model = build_model("gmf", ranking_table, embedding_dim=4)  # history=True by default
    assert model.user_tower.field_names == ["user_id", RECENT_MOVIES]
    user = model.user_tower(features)
    np.testing.assert_allclose(user["pooled"], user["embeddings"].numpy().sum(axis=1))
    # history=False is the paper's setup: ids only.
    neumf = build_model("neumf", ranking_table, embedding_dim=4, mlp_embedding_dim=6, history=False)
    assert neumf.user_tower.field_names == ["user_id"] and neumf.user_tower.embedding_dim == 10
    assert neumf.movie_tower.field_names == ["movie_id"] and neumf.gmf_dim == 4


@pytest.mark.parametrize("name", ["gmf", "ncf_mlp", "neumf"])
def test_config_roundtrip(name, ranking_table, features, model_config_roundtrip):
    model = build_model(name, ranking_table, embedding_dim=4, l2=1e-3)
    clone = model_config_roundtrip(model, features)
    assert clone.l2 == 1e-3


def test_neumf_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = NeuMF(*small_towers(7, **IDS), gmf_dim=3, mlp_units=(6, 4))
    model(features)
    _randomize(model, seed=5)
    savedmodel_roundtrip(model, features)


@pytest.mark.parametrize("cls", [GMF, NCFMLP, NeuMF])
def test_training_lowers_loss_and_beats_random(cls, ranking_table, small_towers, train_and_score):
    towers = small_towers(8, **IDS)
    model = cls(*towers, gmf_dim=4) if cls is NeuMF else cls(*towers)
    losses, held_out_auc = train_and_score(model, ranking_table, epochs=4)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_neumf_with_history_runs_on_the_training_pipeline(tiny_data):
    model = build_model("neumf", tiny_data.example_table(), embedding_dim=4)
    assert model.user_tower.field_names == ["user_id", RECENT_MOVIES]
    batch = next(iter(tiny_data.dataset(model, num_negatives=2, batch_size=32)))
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())
    scores = tiny_data.score_fn(model, "test")(np.array([0, 1]), np.array([[0, 1, 2], [3, 4, 5]]))
    assert scores.shape == (2, 3) and np.isfinite(scores).all()

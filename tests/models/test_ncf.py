"""Tests for tfrec.models.ncf (GMF, NCF MLP) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import score_fn
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import GMF, NCFMLP, build_model
from tfrec.training import training_dataset

from .conftest import randomize

IDS = {"user": ("user_id",), "movie": ("movie_id",)}
BASE = {"task": "ranking", "history_length": 0, "l2": 0.0}


def gmf(towers, **kwargs):
    return GMF(*towers, **{**BASE, **kwargs})


def ncf_mlp(towers, mlp_units=(6, 4), dropout=0.0, batch_norm=False, **kwargs):
    return NCFMLP(*towers, mlp_units=mlp_units, dropout=dropout, batch_norm=batch_norm,
                  **{**BASE, **kwargs})  # fmt: skip


def ids(tower, values):
    encoder = tower.fields[0]
    return np.array([encoder.vocabulary.index(v) + 1 for v in values])


def id_embeddings(model, features):
    """The user and movie id embeddings of each row, looked up by hand."""
    user, movie = model.query_tower, model.candidate_tower
    p = user.fields[0].embedding.embeddings.numpy()[ids(user, features["user_id"])]
    q = movie.fields[0].embedding.embeddings.numpy()[ids(movie, features["movie_id"])]
    return p, q


def relu_mlp(x, weights):
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        x = np.maximum(x @ kernel + bias, 0.0)
    return x


def trained(model, features):
    model(features)
    randomize(model, seed=len(model.weights))
    return model


def test_gmf_is_the_weighted_elementwise_product(small_towers, features):
    model = trained(gmf(small_towers(3, **IDS)), features)
    p, q = id_embeddings(model, features)
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(model(features), (p * q) @ kernel[:, 0] + bias[0], rtol=1e-5)


def test_mlp_is_a_relu_tower_on_the_concatenated_embeddings(small_towers, features):
    model = trained(ncf_mlp(small_towers(3, **IDS)), features)
    p, q = id_embeddings(model, features)
    hidden = relu_mlp(np.concatenate([p, q], axis=1), model.mlp.get_weights())
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(model(features), hidden @ kernel[:, 0] + bias[0], rtol=1e-4)


def test_gmf_catalogue_scores_are_one_matrix_product(small_towers, features):
    model = trained(gmf(small_towers(3, **IDS)), features)
    q, c = model.encode_query(features), model.encode_candidates(features)
    p, v = id_embeddings(model, features)
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(
        model.score_all(q, c), (p * kernel[:, 0]) @ v.T + bias[0], rtol=1e-5, atol=1e-5
    )


def test_invalid_hyperparameters_are_named(small_towers):
    with pytest.raises(ValueError, match=r"Received: mlp_units=\[\]"):
        ncf_mlp(small_towers(3, **IDS), mlp_units=())
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        ncf_mlp(small_towers(3, **IDS), dropout=1.0)


def test_first_order_tables_are_frozen_and_every_trainable_variable_learns(
    small_towers, features, ranking_table
):
    for model in (gmf(small_towers(4, **IDS)), ncf_mlp(small_towers(4, **IDS))):
        model(features)
        frozen = {
            id(v)
            for tower in (model.query_tower, model.candidate_tower)
            for v in tower.fields[0].weight.weights
        }
        assert frozen and not frozen & {id(v) for v in model.trainable_variables}
        batch = dict(features, label=ranking_table["label"][:16])
        with tf.GradientTape() as tape:
            loss = model.compute_loss(batch, training=True)
        gradients = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in gradients)


def test_history_option_adds_the_recent_movies_to_the_user_vector(ranking_table, features):
    model = build_model("gmf", ranking_table, embedding_dim=4, history_length=4)
    assert model.query_tower.field_names == ["user_id", RECENT_MOVIES]
    user = model.query_tower(features)
    np.testing.assert_allclose(user["pooled"], user["embeddings"].numpy().sum(axis=1))
    # history_length=0 is the paper's setup: ids only.
    paper = build_model("ncf_mlp", ranking_table, embedding_dim=4, history_length=0)
    assert paper.query_tower.field_names == ["user_id"]
    assert paper.candidate_tower.field_names == ["movie_id"]


@pytest.mark.parametrize("name", ["gmf", "ncf_mlp"])
def test_config_roundtrip(name, ranking_table, features, model_config_roundtrip):
    model = build_model(name, ranking_table, embedding_dim=4, l2=1e-3, history_length=4)
    clone = model_config_roundtrip(model, features)
    assert clone.l2 == 1e-3


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = ncf_mlp(small_towers(3, **IDS), batch_norm=True, dropout=0.2)
    model(features)
    randomize(model, seed=5)
    savedmodel_roundtrip(model, features)


@pytest.mark.parametrize("make", [gmf, ncf_mlp], ids=["gmf", "ncf_mlp"])
def test_training_lowers_loss_and_beats_random(make, ranking_table, small_towers, train_and_score):
    losses, held_out_auc = train_and_score(make(small_towers(8, **IDS)), ranking_table)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_mlp_with_history_runs_on_the_training_pipeline(tiny_data):
    model = build_model("ncf_mlp", tiny_data, embedding_dim=4, mlp_units=(4,), history_length=3)
    assert model.query_tower.field_names == ["user_id", RECENT_MOVIES]
    batch = next(iter(training_dataset(model, tiny_data, num_negatives=2, batch_size=32)))
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())
    scores = score_fn(model, tiny_data, "test")(np.array([0, 1]), np.array([[0, 1, 2], [3, 4, 5]]))
    assert scores.shape == (2, 3) and np.isfinite(scores).all()

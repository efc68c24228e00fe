"""Tests for tfrec.models.neumf (NeuMF): the two branches by hand and `from_pretrained`."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import score_fn
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import NeuMF, build_model
from tfrec.training import training_dataset

from .conftest import randomize
from .test_ncf import BASE, IDS, gmf, id_embeddings, ncf_mlp, relu_mlp, trained


def neumf(towers, gmf_dim, mlp_units=(4,), dropout=0.0, batch_norm=False, **kwargs):
    return NeuMF(*towers, gmf_dim=gmf_dim, mlp_units=mlp_units, dropout=dropout,
                 batch_norm=batch_norm, **{**BASE, **kwargs})  # fmt: skip


def test_neumf_splits_each_embedding_between_the_branches(small_towers, features):
    model = trained(neumf(small_towers(5, **IDS), gmf_dim=2), features)
    p, q = id_embeddings(model, features)
    hidden = np.concatenate(
        [
            p[:, :2] * q[:, :2],
            relu_mlp(np.concatenate([p[:, 2:], q[:, 2:]], axis=1), model.mlp.get_weights()),
        ],
        axis=1,
    )
    kernel, bias = model.output_layer.get_weights()
    np.testing.assert_allclose(
        model(features), hidden @ kernel[:, 0] + bias[0], rtol=1e-4, atol=1e-5
    )


def test_invalid_arguments(small_towers):
    with pytest.raises(ValueError, match="Received: gmf_dim=5"):
        neumf(small_towers(5, **IDS), gmf_dim=5)
    with pytest.raises(ValueError, match="Received: gmf_dim=True"):
        neumf(small_towers(5, **IDS), gmf_dim=True)
    user, _ = small_towers(5, **IDS)
    _, movie = small_towers(4, **IDS)
    with pytest.raises(ValueError, match="candidate embedding_dim=4"):
        neumf((user, movie), gmf_dim=2)


@pytest.mark.parametrize("alpha", [0.3, 0.0, 1.0])
def test_from_pretrained_is_the_alpha_mix(small_towers, features, alpha):
    pretrained_gmf = trained(gmf(small_towers(3, **IDS), l2=1e-3), features)
    pretrained_mlp = trained(ncf_mlp(small_towers(5, **IDS)), features)
    model = NeuMF.from_pretrained(pretrained_gmf, pretrained_mlp, alpha=alpha)
    expected = alpha * pretrained_gmf(features).numpy()
    expected += (1 - alpha) * pretrained_mlp(features).numpy()
    np.testing.assert_allclose(model(features), expected, rtol=1e-5, atol=1e-5)
    # The output layer by hand: [alpha * h_gmf; (1 - alpha) * h_mlp], mixed bias.
    kernel, bias = model.output_layer.get_weights()
    gmf_kernel, gmf_bias = pretrained_gmf.output_layer.get_weights()
    mlp_kernel, mlp_bias = pretrained_mlp.output_layer.get_weights()
    np.testing.assert_allclose(kernel[:3], alpha * gmf_kernel, rtol=1e-6)
    np.testing.assert_allclose(kernel[3:], (1 - alpha) * mlp_kernel, rtol=1e-6)
    np.testing.assert_allclose(bias, alpha * gmf_bias + (1 - alpha) * mlp_bias, rtol=1e-6)
    assert model.l2 == 1e-3 and model.history_length == 0


def test_from_pretrained_concatenates_separate_embeddings(small_towers, features):
    pretrained_gmf = trained(gmf(small_towers(3, **IDS)), features)
    pretrained_mlp = trained(ncf_mlp(small_towers(5, **IDS)), features)
    model = NeuMF.from_pretrained(pretrained_gmf, pretrained_mlp, alpha=0.5, l2=0.25)
    # Separate embeddings: each row is the GMF row (k=3) followed by the MLP row (k=5).
    assert model.gmf_dim == 3 and model.query_tower.embedding_dim == 8 and model.l2 == 0.25
    for side in ("query_tower", "candidate_tower"):
        rows = getattr(model, side).fields[0].embedding.embeddings.numpy()
        g = getattr(pretrained_gmf, side).fields[0].embedding.embeddings.numpy()
        m = getattr(pretrained_mlp, side).fields[0].embedding.embeddings.numpy()
        np.testing.assert_array_equal(rows[:, :3], g)
        np.testing.assert_array_equal(rows[:, 3:], m)
    for new, old in zip(model.mlp.get_weights(), pretrained_mlp.mlp.get_weights(), strict=True):
        np.testing.assert_array_equal(new, old)
    # The new model owns copies: changing it leaves the pretrained models untouched.
    before = pretrained_gmf(features).numpy()
    model.query_tower.set_weights([np.zeros_like(w) for w in model.query_tower.get_weights()])
    np.testing.assert_allclose(pretrained_gmf(features), before)


def test_from_pretrained_keeps_the_mix_on_the_factorised_path(small_towers, features):
    pretrained_gmf = trained(gmf(small_towers(3, **IDS)), features)
    pretrained_mlp = trained(ncf_mlp(small_towers(4, **IDS), batch_norm=True), features)
    model = NeuMF.from_pretrained(pretrained_gmf, pretrained_mlp, alpha=0.6)
    users = {"user_id": features["user_id"][:3]}
    movies = {"movie_id": features["movie_id"]}

    def catalogue(net):
        return net.score_all(net.encode_query(users), net.encode_candidates(movies)).numpy()

    assert "hidden" in model.encode_query(users)  # the factorised path, not the tiling one
    expected = 0.6 * catalogue(pretrained_gmf) + 0.4 * catalogue(pretrained_mlp)
    np.testing.assert_allclose(catalogue(model), expected, rtol=1e-5, atol=1e-5)


def test_from_pretrained_rejects_bad_inputs(small_towers, features):
    untrained = gmf(small_towers(3, **IDS))
    mlp = trained(ncf_mlp(small_towers(3, **IDS), mlp_units=(4,)), features)
    with pytest.raises(ValueError, match="trained models"):
        NeuMF.from_pretrained(untrained, mlp)
    untrained(features)
    with pytest.raises(ValueError, match="Received: alpha=1.5"):
        NeuMF.from_pretrained(untrained, mlp, alpha=1.5)
    with pytest.raises(TypeError, match="mlp=GMF"):
        NeuMF.from_pretrained(untrained, untrained)
    other = trained(
        ncf_mlp(small_towers(3, user=("user_id", "user_gender"), movie=IDS["movie"])), features
    )
    with pytest.raises(ValueError, match="same fields"):
        NeuMF.from_pretrained(untrained, other)


def test_first_order_tables_are_frozen_and_every_trainable_variable_learns(
    small_towers, features, ranking_table
):
    model = neumf(small_towers(6, **IDS), gmf_dim=3)
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


def test_builder_sizes(ranking_table):
    model = build_model("neumf", ranking_table, embedding_dim=4, mlp_embedding_dim=6,
                        history_length=0)  # fmt: skip
    assert model.query_tower.field_names == ["user_id"] and model.query_tower.embedding_dim == 10
    assert model.candidate_tower.field_names == ["movie_id"] and model.gmf_dim == 4


def test_config_and_savedmodel_roundtrip(
    ranking_table, features, model_config_roundtrip, savedmodel_roundtrip
):
    model = build_model("neumf", ranking_table, embedding_dim=3, mlp_embedding_dim=4,
                        mlp_units=(6, 4), batch_norm=True, dropout=0.1, l2=1e-3,
                        history_length=4)  # fmt: skip
    model(features)
    randomize(model, seed=5, scale=0.5)
    clone = model_config_roundtrip(model, features)
    assert (clone.gmf_dim, clone.l2, clone.batch_norm) == (3, 1e-3, True)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = neumf(small_towers(8, **IDS), gmf_dim=4, mlp_units=(8,))
    losses, held_out_auc = train_and_score(model, ranking_table, epochs=4)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_with_history_runs_on_the_training_pipeline(tiny_data):
    model = build_model("neumf", tiny_data, embedding_dim=4, mlp_embedding_dim=4,
                        mlp_units=(4,), history_length=3)  # fmt: skip
    assert model.query_tower.field_names == ["user_id", RECENT_MOVIES]
    batch = next(iter(training_dataset(model, tiny_data, num_negatives=2, batch_size=32)))
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())
    scores = score_fn(model, tiny_data, "test")(np.array([0, 1]), np.array([[0, 1, 2], [3, 4, 5]]))
    assert scores.shape == (2, 3) and np.isfinite(scores).all()

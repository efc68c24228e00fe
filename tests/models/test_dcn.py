"""Tests for tfrec.models.dcn (DCN-v2) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import DCN, build_model

from .conftest import randomize


def dcn(towers, cross_layers=3, projection_dim=None, dnn_units=(8,), dropout=0.0,
        batch_norm=False, structure="parallel", **kwargs):  # fmt: skip
    base = {"task": "ranking", "history_length": 0, "l2": 0.0, **kwargs}
    return DCN(*towers, cross_layers=cross_layers, projection_dim=projection_dim,
               dnn_units=dnn_units, dropout=dropout, batch_norm=batch_norm, structure=structure,
               **base)  # fmt: skip


def _cross(x0, weights, low_rank):
    """x_{l+1} = x0 * (W x_l + b) + x_l, with W = U V when low-rank."""
    x, step = x0, 3 if low_rank else 2
    for i in range(0, len(weights), step):
        layer = weights[i : i + step]
        linear = (x @ layer[0] @ layer[1] + layer[2]) if low_rank else (x @ layer[0] + layer[1])
        x = x0 * linear + x
    return x


def _relu_mlp(x, weights):
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        x = np.maximum(x @ kernel + bias, 0.0)
    return x


def _built(model, features, seed=0):
    model(features)
    randomize(model, seed, scale=0.5)
    both = [
        model.query_tower(features)["embeddings"],
        model.candidate_tower(features)["embeddings"],
    ]
    x0 = np.concatenate(both, axis=1).reshape(16, -1)
    kernel, bias = model.output_layer.get_weights()
    return x0, kernel[:, 0], bias[0]


def test_parallel_full_rank_by_hand(small_towers, features):
    model = dcn(small_towers(2), cross_layers=2, dnn_units=(5, 3))
    x0, kernel, bias = _built(model, features)
    crossed = _cross(x0, model.cross.get_weights(), low_rank=False)
    deep = _relu_mlp(x0, model.dnn.get_weights())
    expected = np.concatenate([crossed, deep], axis=1) @ kernel + bias
    np.testing.assert_allclose(model(features), expected, rtol=1e-4, atol=1e-5)


def test_stacked_low_rank_by_hand(small_towers, features):
    model = dcn(
        small_towers(2), cross_layers=2, projection_dim=3, dnn_units=(4,), structure="stacked"
    )
    x0, kernel, bias = _built(model, features, seed=1)
    assert [w.shape for w in model.cross.get_weights()[:3]] == [(8, 3), (3, 8), (8,)]
    crossed = _cross(x0, model.cross.get_weights(), low_rank=True)
    expected = _relu_mlp(crossed, model.dnn.get_weights()) @ kernel + bias
    np.testing.assert_allclose(model(features), expected, rtol=1e-4, atol=1e-5)


def test_cross_network_alone(small_towers, features):
    model = dcn(small_towers(2), cross_layers=1, dnn_units=())
    x0, kernel, bias = _built(model, features, seed=2)
    expected = _cross(x0, model.cross.get_weights(), low_rank=False) @ kernel + bias
    np.testing.assert_allclose(model(features), expected, rtol=1e-4, atol=1e-5)


def test_invalid_arguments(small_towers):
    with pytest.raises(ValueError, match="Received: structure='serial'"):
        dcn(small_towers(), structure="serial")
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        dcn(small_towers(), dropout=1.0)
    with pytest.raises(ValueError, match="Received: dnn_units="):
        dcn(small_towers(), dnn_units=(8, 0))


def test_first_order_tables_are_frozen(small_towers, features, ranking_table):
    model = dcn(small_towers(), dnn_units=(4,))
    model(features)
    weight_tables = {id(v) for e in model.query_tower.fields for v in e.weight.weights}
    assert weight_tables and not weight_tables & {id(v) for v in model.trainable_variables}
    with tf.GradientTape() as tape:
        loss = model.compute_loss(dict(features, label=ranking_table["label"][:16]), True)
    assert all(g is not None for g in tape.gradient(loss, model.trainable_variables))


def test_builder_defaults(ranking_table):
    model = build_model("dcn", ranking_table, embedding_dim=4, projection_dim=8, history_length=4)
    assert isinstance(model, DCN)
    assert (model.structure, model.cross_layers, model.projection_dim) == ("parallel", 3, 8)
    assert (model.dnn_units, model.dropout) == ([256, 128], 0.1)
    assert model.query_tower.field_names[-1] == "recent_movie_ids"


def test_config_roundtrip(small_towers, features, model_config_roundtrip):
    model = dcn(small_towers(), projection_dim=2, dnn_units=(8,), structure="stacked", l2=1e-3)
    clone = model_config_roundtrip(model, features)
    assert (clone.projection_dim, clone.structure) == (2, "stacked")


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = dcn(small_towers(3), cross_layers=2, dnn_units=(4,), batch_norm=True, dropout=0.2)
    model(features)
    randomize(model, seed=3, scale=0.5)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = dcn(small_towers(8), cross_layers=2, dnn_units=(16,))
    losses, held_out_auc = train_and_score(model, ranking_table, epochs=5)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8

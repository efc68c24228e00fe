"""Tests for tfrec/models/fast_scoring.py: the factorised DeepFM scorer equals the plain one."""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import build_model
from tfrec.models.fast_scoring import (
    cross_logits,
    fast_score_fn,
    pair_logits,
    side_parts,
    supports_fast_scoring,
)
from tfrec.training import RankingData


def _perturb(model, seed=0):
    """Random non-zero weights everywhere (biases, first-order weights, BN statistics)."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        variable.assign(rng.normal(0, 0.3, variable.shape).astype(variable.dtype.as_numpy_dtype))
    for variable in model.variables:
        if "moving_variance" in variable.name:
            variable.assign(np.abs(variable.numpy()) + 0.5)


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(num_users=30, num_movies=40, ratings_per_user=8, seed=1)
    return RankingData.from_movielens(ml, history_length=5)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_catalogue_scores_equal_the_plain_model(data, batch_norm):
    model = build_model(
        "deepfm", data.example_table(), embedding_dim=4, dnn_units=[8, 6], batch_norm=batch_norm
    )
    inputs = data.inputs(model, "test")
    model(inputs.gather(tf.constant([0]), tf.constant([0])))
    _perturb(model)
    users = np.array([3, 0, 7])
    items = np.broadcast_to(np.arange(40), (3, 40))
    plain = model(inputs.gather(np.repeat(users, 40), items.reshape(-1))).numpy().reshape(3, 40)
    user = model.user_tower(inputs.per_user)
    movie = model.movie_tower(inputs.per_movie)
    fast = fast_score_fn(model, user, movie, batch_pairs=50)
    np.testing.assert_allclose(fast(users, items), plain, atol=1e-5, rtol=1e-5)
    # Different items per row: the pair-by-pair path.
    some = np.array([[5, 1, 39], [0, 0, 2], [7, 8, 9]])
    expected = plain[np.arange(3)[:, None], some]
    np.testing.assert_allclose(fast(users, some), expected, atol=1e-5, rtol=1e-5)


def test_parts_add_up_by_hand():
    """One user field and one item field, k=1, DNN of one unit: every term checked by hand."""
    from tfrec.features.encoders import CategoricalEncoder
    from tfrec.models.deepfm import DeepFM
    from tfrec.towers import Tower

    user = Tower([CategoricalEncoder("u", hash_bins=2, embedding_dim=1, name="u")], name="user")
    item = Tower([CategoricalEncoder("i", hash_bins=2, embedding_dim=1, name="i")], name="item")
    model = DeepFM(user, item, dnn_units=[1])
    model({"user/u": tf.constant([0]), "item/i": tf.constant([0])})
    model.linear.bias.assign(0.5)
    user.encoders[0].embedding.embeddings.assign([[2.0], [0.0]])
    user.encoders[0].weight.embeddings.assign([[1.0], [0.0]])
    item.encoders[0].embedding.embeddings.assign([[3.0], [0.0]])
    item.encoders[0].weight.embeddings.assign([[-2.0], [0.0]])
    dense, out = model.dnn._blocks[0], model.dnn._blocks[-1]
    dense.kernel.assign([[1.0], [-1.0]])
    dense.bias.assign([4.0])
    out.kernel.assign([[10.0]])
    out.bias.assign([0.0])
    u = side_parts(model, user({"user/u": tf.constant([0])}), "user")
    i = side_parts(model, item({"item/i": tf.constant([0])}), "item")
    # linear 0.5 + 1 - 2; FM 2*3 = 6; DNN relu(2 - 3 + 4) * 10 = 30.
    assert u["linear"].numpy()[0] == pytest.approx(1.5)
    assert u["fm"].numpy()[0] == 0.0 and i["fm"].numpy()[0] == 0.0
    assert u["hidden"].numpy()[0, 0] == pytest.approx(6.0)
    assert i["hidden"].numpy()[0, 0] == pytest.approx(-3.0)
    assert pair_logits(model, u, i).numpy()[0] == pytest.approx(-0.5 + 6 + 30)
    assert cross_logits(model, u, i).numpy()[0, 0] == pytest.approx(35.5)


def test_score_fn_uses_fast_path_and_matches(data):
    model = build_model("deepfm", data.example_table(), embedding_dim=4, dnn_units=[8])
    inputs = data.inputs(model, "valid")
    model(inputs.gather(tf.constant([0]), tf.constant([0])))
    _perturb(model, seed=3)
    scores = data.score_fn(model, "valid")(
        np.array([1, 2]), np.broadcast_to(np.arange(40), (2, 40))
    )
    plain = model(inputs.gather(np.repeat([1, 2], 40), np.tile(np.arange(40), 2))).numpy()
    np.testing.assert_allclose(scores, plain.reshape(2, 40), atol=1e-5, rtol=1e-5)
    # The reference path (whole head per pair, as the benchmarks time it) gives the same.
    reference = data.score_fn(model, "valid", factorised=False)(
        np.array([1, 2]), np.broadcast_to(np.arange(40), (2, 40))
    )
    np.testing.assert_allclose(reference, plain.reshape(2, 40), atol=1e-5, rtol=1e-5)


def test_other_models_are_rejected(data):
    model = build_model("fm", data.example_table(), embedding_dim=4)
    assert not supports_fast_scoring(model)
    with pytest.raises(TypeError, match="Fast catalogue scoring needs a tfrec DeepFM"):
        side_parts(model, {}, "user")


def test_mixed_precision_option_builds_bfloat16_and_restores_policy(data):
    before = tf.keras.mixed_precision.global_policy().name
    model = build_model(
        "deepfm", data.example_table(), embedding_dim=4, dnn_units=[8], mixed_precision=True
    )
    assert tf.keras.mixed_precision.global_policy().name == before
    assert model.dnn.compute_dtype == "bfloat16" and model.dnn.variable_dtype == "float32"
    inputs = data.inputs(model, "test")
    logits = model(inputs.gather(tf.constant([0, 1]), tf.constant([2, 3])))
    assert logits.dtype == tf.float32
    with pytest.raises(ValueError, match="mixed_precision"):
        build_model("deepfm", data.example_table(), mixed_precision="yes")

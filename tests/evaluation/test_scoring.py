"""CatalogueScorer and evaluate_model through the model contract, against the per-pair model.

The reference is the whole network on each (user, item) pair of the same preprocessed
features (`model(inputs.gather(...))`); FM scores a catalogue with its factorised `score_all`,
DCN with the default one (pairs tiled), and both must match the reference.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.evaluation import (
    CatalogueScorer,
    evaluate_model,
    full_ranking,
    sampled_ranking,
    score_fn,
)
from tfrec.features import RECENT_MOVIES
from tfrec.features.inputs import ModelInputs
from tfrec.models import build_model

SMALL = {"fm": {}, "dcn": {"cross_layers": 1, "dnn_units": [8]}}


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(num_users=30, num_movies=40, ratings_per_user=8, seed=2)
    return SplitData.from_movielens(ml)


def _model(name, data):
    return build_model(name, data, embedding_dim=4, history_length=3, **SMALL[name])


@pytest.fixture(scope="module", params=sorted(SMALL))
def model(request, data):
    return _model(request.param, data)


def _reference(model, inputs, users, items):
    """Logits [B, C] of the whole network on each pair (users [B], items [B, C])."""
    pairs = inputs.gather(np.repeat(users, items.shape[1]), items.reshape(-1))
    return model(pairs, training=False).numpy().reshape(items.shape)


USERS = np.array([0, 5, 7, 29, 5])


def test_full_catalogue_equals_the_per_pair_model(model, data):
    inputs = ModelInputs.build(model, data, "test")
    scorer = CatalogueScorer(model, inputs)  # builds the (fresh) model with one pair
    items = np.tile(np.arange(data.num_items), (USERS.size, 1))
    scores = scorer(USERS, items)
    assert scores.shape == (5, data.num_items) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, _reference(model, inputs, USERS, items), atol=1e-5)
    np.testing.assert_array_equal(scores[1], scores[4])  # same user, same scores
    shared = np.tile([3, 0, 17], (USERS.size, 1))  # one shared list: score_all on those items
    np.testing.assert_allclose(scorer(USERS, shared), scores[:, [3, 0, 17]], atol=1e-6)


def test_own_candidates_per_row_equal_the_per_pair_model(model, data):
    inputs = ModelInputs.build(model, data, "test")
    scorer = CatalogueScorer(model, inputs)
    items = np.random.default_rng(0).integers(0, data.num_items, (USERS.size, 6))
    scores = scorer(USERS, items)
    np.testing.assert_allclose(scores, _reference(model, inputs, USERS, items), atol=1e-5)


def test_small_batches_give_identical_scores(model, data):
    inputs = ModelInputs.build(model, data, "test")
    whole, pieces = CatalogueScorer(model, inputs), CatalogueScorer(model, inputs, batch_pairs=7)
    full = np.tile(np.arange(data.num_items), (USERS.size, 1))
    own = np.random.default_rng(1).integers(0, data.num_items, (USERS.size, 4))
    for items in (full, own):  # 7 pairs per step: one user at a time, or one row of 4
        np.testing.assert_allclose(pieces(USERS, items), whole(USERS, items), rtol=1e-6, atol=1e-6)


def test_served_scores_are_the_tasks_activation(model, data):
    inputs = ModelInputs.build(model, data, "test")
    items = np.tile(np.arange(data.num_items), (2, 1))
    logits = CatalogueScorer(model, inputs)(USERS[:2], items)
    probabilities = CatalogueScorer(model, inputs, logits=False)(USERS[:2], items)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_refresh_re_encodes_the_catalogue(data):
    model = _model("fm", data)
    inputs = ModelInputs.build(model, data, "test")
    scorer = CatalogueScorer(model, inputs)
    items = np.tile(np.arange(data.num_items), (USERS.size, 1))
    before = scorer(USERS, items)
    for variable in model.candidate_tower.trainable_variables:
        variable.assign_add(tf.fill(variable.shape, 0.1))
    np.testing.assert_array_equal(scorer(USERS, items), before)  # the cached encodings
    scorer.refresh()
    after = scorer(USERS, items)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, _reference(model, inputs, USERS, items), atol=1e-5)


def test_bad_shapes_and_empty_batches(model, data):
    scorer = CatalogueScorer(model, ModelInputs.build(model, data, "test"))
    with pytest.raises(ValueError, match=r"item_index must be \[B, C\].*item_index.shape=\(3,\)"):
        scorer(np.array([0, 1, 2]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"user_index.shape=\(2,\), item_index.shape=\(3, 4\)"):
        scorer(np.array([0, 1]), np.zeros((3, 4), np.int64))
    assert scorer(np.zeros(0, np.int64), np.zeros((0, 5), np.int64)).shape == (0, 5)
    assert scorer(np.array([1]), np.zeros((1, 0), np.int64)).shape == (1, 0)


def test_score_fn_sees_histories_as_of_the_split(model, data):
    valid, test = score_fn(model, data, "valid"), score_fn(model, data, "test")
    assert isinstance(valid, CatalogueScorer)
    key = f"{model.query_tower.name}/{RECENT_MOVIES}"
    expected = ModelInputs.build(model, data, "valid").per_user[key]
    np.testing.assert_array_equal(valid.inputs.per_user[key], expected)
    assert not np.array_equal(valid.inputs.per_user[key], test.inputs.per_user[key])
    users = np.arange(data.num_users)
    items = np.tile(np.arange(data.num_items), (users.size, 1))
    assert np.abs(valid(users, items) - test(users, items)).max() > 0  # new history, new scores


def test_evaluate_model_equals_the_protocols_on_reference_scores(model, data):
    for split in ("valid", "test"):
        inputs = ModelInputs.build(model, data, split)
        users = np.arange(data.num_users)
        table = _reference(
            model, inputs, users, np.tile(np.arange(data.num_items), (users.size, 1))
        )

        def reference(user_index, item_index, table=table):
            return np.take_along_axis(table[user_index], item_index, axis=1)

        result = evaluate_model(model, data, split, ks=(5, 10), num_negatives=10)
        metrics = [
            f"{m}@{k}" for k in (5, 10) for m in ("hr", "ndcg", "recall", "precision", "map")
        ]
        assert set(result) == {f"{p}_{m}" for p in ("sampled", "full") for m in [*metrics, "mrr"]}
        targets = data.targets(split)
        full = full_ranking(reference, *targets, data.num_items, data.seen(split), ks=(5, 10))
        sampled = sampled_ranking(
            reference, *targets, data.num_items, data.seen(split), 10, ks=(5, 10)
        )
        for name in [*metrics, "mrr"]:
            assert result[f"full_{name}"] == pytest.approx(full[name], abs=1e-9), name
            assert result[f"sampled_{name}"] == pytest.approx(sampled[name], abs=1e-9), name
    only_full = evaluate_model(model, data, "test", protocols=("full",))
    assert set(only_full) == {
        f"full_{m}" for m in ("hr@10", "ndcg@10", "recall@10", "precision@10", "map@10", "mrr")
    }

"""Tests for tfrec.models.fm (FM) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest

from tfrec.models import FM, build_model

from .conftest import randomize


def _fm(towers, l2=0.0):
    return FM(*towers, task="ranking", history_length=0, l2=l2)


def _small_fm(small_towers, k=3):
    return _fm(small_towers(k, movie=("movie_id",)))


def _row(encoder, value):
    """Row of `value` in an encoder's tables: index 0 is the out-of-vocabulary bucket."""
    return encoder.vocabulary.index(str(value).lower() if value in (True, False) else value) + 1


def test_logit_is_bias_plus_weights_plus_pairwise_dot_products(small_towers, features):
    model = _small_fm(small_towers)
    model(features)
    randomize(model)
    logits = model(features).numpy()

    encoders = model.query_tower.fields + model.candidate_tower.fields
    keys = ["user_id", "user_gender", "movie_id"]
    bias = model.linear.bias.numpy()
    for b in range(len(logits)):
        rows = [_row(e, features[key][b]) for e, key in zip(encoders, keys, strict=True)]
        v = [e.embedding.embeddings.numpy()[r] for e, r in zip(encoders, rows, strict=True)]
        w = [e.weight.embeddings.numpy()[r, 0] for e, r in zip(encoders, rows, strict=True)]
        pairwise = v[0] @ v[1] + v[0] @ v[2] + v[1] @ v[2]
        assert logits[b] == pytest.approx(bias + sum(w) + pairwise, rel=1e-5, abs=1e-5)


def test_unknown_ids_use_the_out_of_vocabulary_row(small_towers, features):
    model = _small_fm(small_towers)
    model(features)
    randomize(model, seed=1)
    unknown = dict(features, user_id=np.array(["no-such-user"] * 16))
    user = model.query_tower(unknown)
    oov = model.query_tower.fields[0].embedding.embeddings.numpy()[0]
    np.testing.assert_allclose(user["embeddings"].numpy()[:, 0], np.tile(oov, (16, 1)))


def test_builder_uses_default_movielens_fields(ranking_table):
    model = build_model("fm", ranking_table, embedding_dim=4, history_length=0)
    assert isinstance(model, FM)
    assert model.query_tower.field_names == [
        "user_id",
        "user_gender",
        "bucketized_user_age",
        "user_occupation_text",
        "user_zip_code_prefix2",
    ]
    assert model.candidate_tower.field_names == [
        "movie_id",
        "movie_genres",
        "movie_title",
        "movie_title_year",
    ]
    with_history = build_model("fm", ranking_table, embedding_dim=4, history_length=3)
    assert with_history.query_tower.field_names[-1] == "recent_movie_ids"
    assert with_history.history_length == 3
    with pytest.raises(TypeError, match="dnn_units"):
        build_model("fm", ranking_table, dnn_units=(8,))


def test_config_roundtrip(ranking_table, features, model_config_roundtrip):
    model = build_model("fm", ranking_table, embedding_dim=4, l2=1e-4, history_length=4)
    clone = model_config_roundtrip(model, features)
    assert (clone.l2, clone.history_length) == (1e-4, 4)


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = _fm(small_towers(4))
    model(features)
    randomize(model, seed=2)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = _fm(small_towers(8))
    losses, held_out_auc = train_and_score(model, ranking_table)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_auc_helper_by_hand(auc_fn):
    # Positives 0.8, 0.4; negatives 0.4, 0.1: 0.8 beats both, 0.4 ties one and beats one.
    assert auc_fn(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == pytest.approx(3.5 / 4)

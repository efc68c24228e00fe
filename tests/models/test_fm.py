"""Tests for tfrec.models.fm (FM) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest

from tfrec.models import FM, build_model


def _small_fm(small_towers, k=3):
    return FM(*small_towers(k, movie=("movie_id",)))


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])


def _row(encoder, value):
    """Row of `value` in an encoder's tables: index 0 is the out-of-vocabulary bucket."""
    return encoder.vocabulary.index(str(value).lower() if value in (True, False) else value) + 1


def test_logit_is_bias_plus_weights_plus_pairwise_dot_products(small_towers, features):
    model = _small_fm(small_towers)
    model(features)
    _randomize(model)
    logits = model(features).numpy()

    encoders = model.user_tower.encoders + model.movie_tower.encoders
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
    _randomize(model, seed=1)
    unknown = dict(features, user_id=np.array(["no-such-user"] * 16))
    user = model.user_tower(unknown)
    oov = model.user_tower.encoders[0].embedding.embeddings.numpy()[0]
    np.testing.assert_allclose(user["embeddings"].numpy()[:, 0], np.tile(oov, (16, 1)))


def test_builder_uses_default_movielens_fields(ranking_table):
    model = build_model("fm", ranking_table, embedding_dim=4, history=False)
    assert isinstance(model, FM)
    assert model.user_tower.field_names == [
        "user_id",
        "user_gender",
        "bucketized_user_age",
        "user_occupation_text",
        "user_zip_code_prefix2",
    ]
    assert model.movie_tower.field_names[:2] == ["movie_id", "movie_genres"]
    with pytest.raises(TypeError, match="dnn_units"):
        build_model("fm", ranking_table, dnn_units=(8,))


def test_config_roundtrip(ranking_table, features, model_config_roundtrip):
    model = build_model("fm", ranking_table, embedding_dim=4, l2=1e-4)
    clone = model_config_roundtrip(model, features)
    assert clone.l2 == 1e-4


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = FM(*small_towers(4))
    model(features)
    _randomize(model, seed=2)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = FM(*small_towers(8))
    losses, held_out_auc = train_and_score(model, ranking_table)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_auc_helper_by_hand(auc_fn):
    # Positives 0.8, 0.4; negatives 0.4, 0.1: 0.8 beats both, 0.4 ties one and beats one.
    assert auc_fn(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == pytest.approx(3.5 / 4)

"""Tests for tfrec.models.ffm (FFM) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import FFM, build_model

from .conftest import randomize


def _ffm(towers, l2=0.0):
    return FFM(*towers, task="ranking", history_length=0, l2=l2)


def _row(encoder, value):
    """Row of `value` in an encoder's tables: index 0 is the out-of-vocabulary bucket."""
    return encoder.vocabulary.index(str(value).lower() if value in (True, False) else value) + 1


def _small_ffm(small_towers, k=2):
    # F = 3 fields (user_id, user_gender | movie_id): towers of size F * k.
    return _ffm(small_towers(FFM.tower_dim(3, k), movie=("movie_id",)))


def test_second_order_is_the_field_aware_pairwise_sum(small_towers, features):
    model = _small_ffm(small_towers, k=2)
    model(features)
    randomize(model)
    second = model.second_order(features).numpy()
    logits = model(features).numpy()

    encoders = model.query_tower.fields + model.candidate_tower.fields
    keys = ["user_id", "user_gender", "movie_id"]
    for b in range(len(logits)):
        rows = [_row(e, features[key][b]) for e, key in zip(encoders, keys, strict=True)]
        # v[i][j]: field i's vector used against field j (row of F * k reshaped to [F, k]).
        pairs = list(zip(encoders, rows, strict=True))
        v = [e.embedding.embeddings.numpy()[r].reshape(3, 2) for e, r in pairs]
        w = [e.weight.embeddings.numpy()[r, 0] for e, r in pairs]
        pairwise = v[0][1] @ v[1][0] + v[0][2] @ v[2][0] + v[1][2] @ v[2][1]
        assert second[b] == pytest.approx(pairwise, rel=1e-5, abs=1e-5)
        bias = model.linear.bias.numpy()
        assert logits[b] == pytest.approx(bias + sum(w) + pairwise, rel=1e-5, abs=1e-5)


def test_field_aware_vectors_differ_from_fm_reuse(small_towers, features):
    # With the field-aware vectors all equal (v[i][j] = u_i), FFM reduces to FM's sum u_i.u_j.
    model = _small_ffm(small_towers, k=2)
    model(features)
    randomize(model, seed=3)
    for encoder in model.query_tower.fields + model.candidate_tower.fields:
        table = encoder.embedding.embeddings.numpy()
        encoder.embedding.set_weights([np.tile(table[:, :2], (1, 3))])
    embeddings = [model.query_tower(features), model.candidate_tower(features)]
    both = tf.concat([e["embeddings"] for e in embeddings], axis=1)
    u = model.field_aware(both).numpy()[:, :, 0]  # [B, F, k]
    fm = sum(np.sum(u[:, i] * u[:, j], axis=1) for i in range(3) for j in range(i + 1, 3))
    np.testing.assert_allclose(model.second_order(features), fm, rtol=1e-5, atol=1e-5)


def test_memory_is_f_times_fm(ranking_table):
    model = build_model("ffm", ranking_table, embedding_dim=3, history_length=0)
    encoders = model.query_tower.fields + model.candidate_tower.fields
    num_fields = len(encoders)
    assert model.num_fields == num_fields == 9 and model.factor_dim == 3
    assert model.query_tower.embedding_dim == num_fields * 3
    for encoder in encoders:
        if getattr(encoder, "vocabulary", None) is not None:  # categorical: vocab + OOV rows
            assert encoder.embedding.input_dim == len(encoder.vocabulary) + 1
            assert encoder.embedding.output_dim == num_fields * 3


def test_rejects_towers_of_the_wrong_size(small_towers):
    with pytest.raises(ValueError, match=r"num_fields \* k.*Received: query embedding_dim=4"):
        _ffm(small_towers(4, movie=("movie_id",)))  # 3 fields do not divide 4


def test_config_roundtrip(small_towers, features, model_config_roundtrip):
    model = _ffm(small_towers(FFM.tower_dim(4, 2)), l2=1e-3)
    clone = model_config_roundtrip(model, features)
    assert (clone.num_fields, clone.factor_dim, clone.l2) == (4, 2, 1e-3)


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = _ffm(small_towers(FFM.tower_dim(4, 2)))
    model(features)
    randomize(model, seed=2)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = _ffm(small_towers(FFM.tower_dim(4, 4)))
    losses, held_out_auc = train_and_score(model, ranking_table)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8

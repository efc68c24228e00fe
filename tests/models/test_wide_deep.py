"""Tests for tfrec.models.wide_deep (Wide&Deep) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import score_fn
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import CANDIDATES, WideDeep, build_model
from tfrec.training import training_dataset

from .conftest import randomize

CROSSES = [("user_gender", "movie_genres", 64), (RECENT_MOVIES, "movie_id", 256)]


def wide_deep(towers, crosses=(), dnn_units=(4,), dropout=0.0, batch_norm=False, wide_l2=0.0,
              **kwargs):  # fmt: skip
    return WideDeep(*towers, crosses=crosses, dnn_units=dnn_units, dropout=dropout,
                    batch_norm=batch_norm, wide_l2=wide_l2, task="ranking", history_length=0,
                    l2=0.0, **kwargs)  # fmt: skip


def _cross_weight(layer, left, right):
    """Sum of the hashed weights of every valid (left, right) value pair, by hand."""
    table = layer.embeddings.numpy()[:, 0]
    strings = [
        f"{a}_X_{b}" for a in left for b in right if a not in ("", "-1") and b not in ("", "-1")
    ]
    return sum(table[int(tf.strings.to_hash_bucket_fast(s, len(table)))] for s in strings)


def test_logit_is_wide_linear_plus_crosses_plus_deep(small_towers, features):
    model = wide_deep(small_towers(3), crosses=CROSSES)
    model(features)
    randomize(model)
    logits = model(features).numpy()

    query, candidate = model.query_tower(features), model.candidate_tower(features)
    embeddings = np.concatenate([query["embeddings"], candidate["embeddings"]], axis=1)
    weights = np.concatenate([query["weights"], candidate["weights"]], axis=1)
    kernel, bias, out_kernel, out_bias = model.dnn.get_weights()
    deep = np.maximum(embeddings.reshape(16, -1) @ kernel + bias, 0) @ out_kernel + out_bias
    gender_x_genre, history_x_movie = model.crossed
    for b in range(16):
        gender = "true" if features["user_gender"][b] else "false"
        wide = model.linear.bias.numpy() + weights[b].sum()
        wide += _cross_weight(
            gender_x_genre, [gender], [str(g) for g in features["movie_genres"][b]]
        )
        wide += _cross_weight(
            history_x_movie, features[RECENT_MOVIES][b], [features["movie_id"][b]]
        )
        assert logits[b] == pytest.approx(wide + deep[b, 0], rel=1e-5, abs=1e-5)


def test_builder_picks_the_default_crosses_present_in_the_table(ranking_table):
    with_history = build_model("wide_deep", ranking_table, embedding_dim=4, history_length=4)
    assert [c[:2] for c in with_history.crosses] == [
        [RECENT_MOVIES, "movie_id"],
        ["user_id", "movie_genres"],
        ["user_gender", "movie_genres"],
        ["bucketized_user_age", "movie_genres"],
        ["user_occupation_text", "movie_genres"],
    ]
    without = build_model("wide_deep", ranking_table, embedding_dim=4, history_length=0)
    assert RECENT_MOVIES not in {k for c in without.crosses for k in c[:2]}
    no_demographics = {k: ranking_table[k] for k in ("user_id", "movie_id", "movie_genres")}
    model = build_model("wide_deep", no_demographics, embedding_dim=4, history_length=0)
    assert model.crosses == [["user_id", "movie_genres", 2**17]]
    custom = build_model("wide_deep", ranking_table, crosses=[["user_id", "movie_id", 8]],
                         history_length=0)  # fmt: skip
    assert custom.crosses == [["user_id", "movie_id", 8]]


def test_invalid_crosses_and_missing_features(small_towers, features):
    with pytest.raises(ValueError, match=r"Received: cross=\('user_id', 'movie_id'\)"):
        wide_deep(small_towers(), crosses=[("user_id", "movie_id")])
    with pytest.raises(ValueError, match="Received: wide_l2=-1"):
        wide_deep(small_towers(), wide_l2=-1)
    model = wide_deep(small_towers(), crosses=[("user_zip", "movie_id", 8)])
    with pytest.raises(KeyError, match=r"read \['user_zip'\] raw, but the features lack them"):
        model(features)


def test_wide_l2_regularizes_the_crossed_weights(small_towers, features):
    model = wide_deep(small_towers(), crosses=CROSSES, wide_l2=0.5)
    model(features)
    for layer in model.crossed:
        layer.set_weights([np.ones_like(layer.get_weights()[0])])
    np.testing.assert_allclose(sum(model.losses), 0.5 * (64 + 256), rtol=1e-6)


def test_config_roundtrip(small_towers, features, model_config_roundtrip):
    model = WideDeep(*small_towers(), crosses=CROSSES, dnn_units=(8, 4), dropout=0.2,
                     batch_norm=True, wide_l2=0.0, task="ranking", history_length=4, l2=1e-3)  # fmt: skip
    clone = model_config_roundtrip(model, features)
    assert clone.crosses == [list(c) for c in CROSSES] and clone.dropout == 0.2


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = wide_deep(small_towers(3), crosses=CROSSES, batch_norm=True, dropout=0.2)
    model(features)
    randomize(model, seed=1)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = wide_deep(small_towers(8), crosses=CROSSES, dnn_units=(16,))
    losses, held_out_auc = train_and_score(model, ranking_table, epochs=5)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_raw_crossed_features_split_by_side(small_towers):
    model = wide_deep(small_towers(), crosses=CROSSES)
    # Crossed features the candidate tower reads are joined per item; the rest per query.
    assert model.raw_candidate_keys == ["movie_genres", "movie_id"]
    assert model.raw_query_keys == [RECENT_MOVIES, "user_gender"]


def test_runs_on_the_training_pipeline(tiny_data):
    model = build_model("wide_deep", tiny_data, embedding_dim=4, dnn_units=(4,), history_length=3)
    crossed = {k for c in model.crosses for k in c[:2]}
    assert sorted(crossed) == sorted(model.raw_query_keys + model.raw_candidate_keys)
    # The crosses read raw features, which the pipeline joins next to the towers' ids.
    batch = next(iter(training_dataset(model, tiny_data, num_negatives=2, batch_size=32)))
    assert crossed <= set(batch) | set(batch[CANDIDATES])  # query side | candidate side
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())
    scores = score_fn(model, tiny_data, "test")(np.array([0, 1]), np.array([[0, 1, 2], [3, 4, 5]]))
    assert scores.shape == (2, 3) and np.isfinite(scores).all()

"""Tests for tfrec.models.wide_deep (Wide&Deep) on tiny synthetic tables."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import WideDeep, build_model
from tfrec.towers import RECENT_MOVIES

CROSSES = [("user_gender", "movie_genres", 64), (RECENT_MOVIES, "movie_id", 256)]


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])


def _cross_weight(layer, left, right):
    """Sum of the hashed weights of every valid (left, right) value pair, by hand."""
    table = layer.embeddings.numpy()[:, 0]
    strings = [
        f"{a}_X_{b}" for a in left for b in right if a not in ("", "-1") and b not in ("", "-1")
    ]
    return sum(table[int(tf.strings.to_hash_bucket_fast(s, len(table)))] for s in strings)


def test_logit_is_wide_linear_plus_crosses_plus_deep(small_towers, features):
    model = WideDeep(*small_towers(3), crosses=CROSSES, dnn_units=(4,))
    model(features)
    _randomize(model)
    logits = model(features).numpy()

    embeddings, weights = (t.numpy() for t in model.fields(features))
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
    with_history = build_model("wide_deep", ranking_table, embedding_dim=4)
    assert [c[:2] for c in with_history.crosses] == [
        [RECENT_MOVIES, "movie_id"],
        ["user_id", "movie_genres"],
        ["user_gender", "movie_genres"],
        ["bucketized_user_age", "movie_genres"],
        ["user_occupation_text", "movie_genres"],
    ]
    without = build_model("wide_deep", ranking_table, embedding_dim=4, history=False)
    assert RECENT_MOVIES not in {k for c in without.crosses for k in c[:2]}
    no_demographics = {k: ranking_table[k] for k in ("user_id", "movie_id", "movie_genres")}
    model = build_model("wide_deep", no_demographics, embedding_dim=4)
    assert model.crosses == [["user_id", "movie_genres", 2**17]]
    custom = build_model("wide_deep", ranking_table, crosses=[["user_id", "movie_id", 8]])
    assert custom.crosses == [["user_id", "movie_id", 8]]


def test_invalid_crosses_and_missing_features(small_towers, features):
    with pytest.raises(ValueError, match=r"Received: cross=\('user_id', 'movie_id'\)"):
        WideDeep(*small_towers(), crosses=[("user_id", "movie_id")])
    with pytest.raises(ValueError, match="Received: wide_l2=-1"):
        WideDeep(*small_towers(), wide_l2=-1)
    model = WideDeep(*small_towers(), crosses=[("user_zip", "movie_id", 8)])
    with pytest.raises(KeyError, match=r"lack \['user_zip'\]"):
        model(features)


def test_wide_l2_regularizes_the_crossed_weights(small_towers, features):
    model = WideDeep(*small_towers(), crosses=CROSSES, wide_l2=0.5, dnn_units=(4,))
    model(features)
    for layer in model.crossed:
        layer.set_weights([np.ones_like(layer.get_weights()[0])])
    np.testing.assert_allclose(sum(model.losses), 0.5 * (64 + 256), rtol=1e-6)


def test_config_roundtrip(small_towers, features, model_config_roundtrip):
    model = WideDeep(*small_towers(), crosses=CROSSES, dnn_units=(8, 4), dropout=0.2, l2=1e-3)
    clone = model_config_roundtrip(model, features)
    assert clone.crosses == [list(c) for c in CROSSES] and clone.dropout == 0.2


def test_savedmodel_roundtrip(small_towers, features, savedmodel_roundtrip):
    model = WideDeep(*small_towers(3), crosses=CROSSES, dnn_units=(4,))
    model(features)
    _randomize(model, seed=1)
    savedmodel_roundtrip(model, features)


def test_training_lowers_loss_and_beats_random(ranking_table, small_towers, train_and_score):
    model = WideDeep(*small_towers(8), crosses=CROSSES, dnn_units=(16,))
    losses, held_out_auc = train_and_score(model, ranking_table, epochs=5)
    assert losses[-1] < 0.8 * losses[0]
    assert held_out_auc > 0.8


def test_runs_on_the_training_pipeline(tiny_data):
    table = tiny_data.example_table()
    model = build_model("wide_deep", table, embedding_dim=4, dnn_units=(4,))
    # The crosses read raw features, which the pipeline joins next to the towers' ids.
    assert model.raw_feature_keys == sorted({k for c in model.crosses for k in c[:2]})
    batch = next(iter(tiny_data.dataset(model, num_negatives=2, batch_size=32)))
    assert set(model.raw_feature_keys) <= set(batch)
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())
    scores = tiny_data.score_fn(model, "test")(np.array([0, 1]), np.array([[0, 1, 2], [3, 4, 5]]))
    assert scores.shape == (2, 3) and np.isfinite(scores).all()

"""The exported signatures, called through plain tf.saved_model.load (as TF Serving would)."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import DeepFM, Recommender
from tfrec.serving import SIGNATURES, RecommenderModule, build_catalogue


def _decode(array):
    return np.char.decode(np.asarray(array).astype(bytes), "utf-8")


def _recommend(served, users, k):
    out = served.signatures["recommend"](
        user_id=tf.constant(users, tf.string), k=tf.constant(k, tf.int32)
    )
    return _decode(out["movie_ids"]), out["scores"].numpy(), _decode(out["titles"])


def _score(served, users, movies):
    out = served.signatures["serving_default"](
        user_id=tf.constant(users), movie_id=tf.constant(movies)
    )
    return out["score"].numpy()


def test_signatures_have_named_batch_dynamic_inputs_and_named_outputs(served, model):
    assert set(SIGNATURES) <= set(served.signatures)
    default = served.signatures["serving_default"]
    assert {
        k: (s.dtype, s.shape.as_list()) for k, s in default.structured_input_signature[1].items()
    } == {
        "user_id": (tf.string, [None]),
        "movie_id": (tf.string, [None]),
    }
    assert list(default.structured_outputs) == ["score"]
    recommend = served.signatures["recommend"]
    inputs = recommend.structured_input_signature[1]
    assert inputs["k"].shape.rank == 0 and inputs["k"].dtype == tf.int32
    assert inputs["user_id"].shape.as_list() == [None]
    assert {k: s.shape.as_list() for k, s in recommend.structured_outputs.items()} == {
        "movie_ids": [None, None],
        "scores": [None, None],
        "titles": [None, None],
    }
    features = served.signatures["score_features"].structured_input_signature[1]
    towers = set(model.query_keys) | set(model.candidate_keys)
    assert set(features) == towers | {"user_id", "movie_id"}
    assert "recent_movie_ids" in towers and "movie_title" in towers
    assert features["recent_movie_ids"].shape.as_list() == [None, None]
    assert features["movie_genres"].dtype == tf.int64
    assert features["user_gender"].dtype == tf.bool


def test_serving_default_matches_the_keras_model(served, model, store):
    users, movies = ["196", "1", "42"], ["242", "5", "300"]
    features = store.join({"user_id": tf.constant(users), "movie_id": tf.constant(movies)})
    expected = tf.sigmoid(model(features, training=False)).numpy()
    np.testing.assert_allclose(_score(served, users, movies), expected, rtol=1e-5, atol=1e-6)


def test_batch_size_is_dynamic(served):
    for batch in (1, 7):
        assert _score(served, ["1"] * batch, ["2"] * batch).shape == (batch,)
    ids, scores, titles = _recommend(served, ["1"] * 5, 4)
    assert ids.shape == scores.shape == titles.shape == (5, 4)
    assert _recommend(served, [], 4)[0].shape == (0, 4)


def test_users_scored_in_steps_match_users_scored_alone(served):
    # 8192 pairs per step / 320 movies = 25 users per step: 30 users take two steps.
    users = [str(u) for u in range(1, 31)]
    ids, scores, _ = _recommend(served, users, 5)
    for row in (0, 24, 25, 29):
        alone = _recommend(served, [users[row]], 5)
        assert ids[row].tolist() == alone[0][0].tolist()
        np.testing.assert_allclose(scores[row], alone[1][0], rtol=1e-5)


def test_unknown_ids_get_the_missing_row_score_not_an_error(served):
    scores = _score(served, ["no-such-user", "1", "no-such-user"], ["242", "no-such-movie", "x"])
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    # Two different unknown movies both map to the missing row: same score for one user.
    a, b = _score(served, ["1", "1"], ["unknown-a", "unknown-b"])
    assert a == pytest.approx(b, rel=1e-6)


def test_score_features_equals_serving_default_on_joined_features(served, store):
    users, movies = ["196", "7"], ["242", "11"]
    joined = store.join({"user_id": tf.constant(users), "movie_id": tf.constant(movies)})
    specs = served.signatures["score_features"].structured_input_signature[1]
    got = served.signatures["score_features"](**{k: joined[k] for k in specs})["score"].numpy()
    np.testing.assert_allclose(got, _score(served, users, movies), rtol=1e-6)


def test_inputs_are_checked_at_the_signature_boundary_naming_the_input(served, store):
    # Issue 14, finding 13: mismatched batch sizes used to fail inside the model
    # ("deep_fm/concat_1"), and NaN / inf features were scored silently.
    score_features = served.signatures["score_features"]
    specs = score_features.structured_input_signature[1]
    joined = store.join({"user_id": tf.constant(["196", "7"]), "movie_id": tf.constant(["1", "2"])})
    features = {k: tf.cast(joined[k], specs[k].dtype) for k in specs}
    assert np.isfinite(score_features(**features)["score"].numpy()).all()
    for name in ("bucketized_user_age", "recent_movie_ids", "movie_id"):
        short = dict(features, **{name: features[name][:1]})
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            score_features(**short)
        message = info.value.message
        assert f"input `{name}` has] [1] [rows but `user_id` has] [2]" in message, message
        assert "concat" not in message
    for bad in (float("inf"), -float("inf")):
        age = dict(features, bucketized_user_age=tf.constant([25.0, bad]))
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            score_features(**age)
        assert "input `bucketized_user_age` must not be inf or -inf" in info.value.message
        assert f"Received:] [{bad}]" in info.value.message
    # NaN is tfrec's "missing" value (the store's row for unknown users): a defined score.
    missing = dict(features, bucketized_user_age=tf.constant([25.0, float("nan")]))
    assert np.isfinite(score_features(**missing)["score"].numpy()).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="input `movie_id` has"):
        _score(served, ["1"], ["1", "2"])


def test_k_is_chosen_per_request_and_clipped_to_the_catalogue(served, movielens):
    num_movies = movielens.num_movies
    for k in (0, 1, 3, 17):
        ids, scores, titles = _recommend(served, ["1", "2"], k)
        assert ids.shape == (2, k)
    ids, _, _ = _recommend(served, ["1"], num_movies + 50)
    assert ids.shape == (1, num_movies)
    with pytest.raises(tf.errors.InvalidArgumentError, match="k"):
        _recommend(served, ["1"], -1)


def test_recommend_scores_are_sorted_model_scores_with_titles(served, movielens):
    ids, scores, titles = _recommend(served, ["196", "1"], 8)
    assert (np.diff(scores, axis=1) <= 0).all()
    for row in range(2):
        user = ["196", "1"][row]
        direct = _score(served, [user] * 8, ids[row].tolist())
        np.testing.assert_allclose(scores[row], direct, rtol=1e-5, atol=1e-6)
    title_of = dict(zip(movielens.movies["movie_id"], movielens.movies["movie_title"], strict=True))
    assert titles.tolist() == [[title_of[i] for i in row] for row in ids.tolist()]


def test_seen_items_are_never_recommended(served, movielens):
    num_movies = movielens.num_movies
    users = np.unique(movielens.seen[0])[:40]
    ids, _, _ = _recommend(served, users, num_movies)
    seen = set(zip(*movielens.seen, strict=True))
    rows = np.repeat(users, ids.shape[1])
    recommended = set(zip(rows.tolist(), ids.reshape(-1).tolist(), strict=True))
    assert not recommended & seen
    # Every unseen movie is still returned (nothing else is masked).
    per_user = np.array([np.sum(movielens.seen[0] == u) for u in users])
    np.testing.assert_array_equal((ids != "").sum(axis=1), num_movies - per_user)


def test_fewer_unseen_than_k_pads_with_empty_ids_and_zero_scores(served, movielens):
    n = movielens.num_movies
    ids, scores, titles = _recommend(served, [movielens.heavy_user], 10)
    assert sorted(ids[0, :3].tolist()) == [str(n - 2), str(n - 1), str(n)]
    assert ids[0, 3:].tolist() == [""] * 7 and titles[0, 3:].tolist() == [""] * 7
    assert scores[0, 3:].tolist() == [0.0] * 7 and (scores[0, :3] > 0).all()


def test_cold_start_popular_returns_popularity_order(served, data):
    ids, scores, _ = _recommend(served, ["new-user-a", "new-user-b"], 5)
    counts = data.item_counts("all")  # every rating: the export is as of "all"
    order = np.argsort(-counts, kind="stable")  # ties: catalogue order
    assert ids[0].tolist() == data.item_ids[order][:5].tolist() == ids[1].tolist()
    np.testing.assert_allclose(scores[0], counts[order][:5] / counts.max(), rtol=1e-6)


def test_cold_start_average_user_scores_with_the_missing_row(average_module):
    users = tf.constant(["new-user-a", "new-user-b", "196"])
    top = average_module.recommend(users, tf.constant(5))
    ids, scores = _decode(top["movie_ids"]), top["scores"].numpy()
    assert ids[0].tolist() == ids[1].tolist()
    direct = average_module.score_ids(tf.constant(["new-user-a"] * 5), top["movie_ids"][0])
    np.testing.assert_allclose(scores[0], direct["score"], rtol=1e-5, atol=1e-6)
    # A known user gets the model's own ranking, not the average user's.
    direct = average_module.score_ids(tf.constant(["196"] * 5), top["movie_ids"][2])
    np.testing.assert_allclose(scores[2], direct["score"], rtol=1e-5, atol=1e-6)
    assert ids[2].tolist() != ids[0].tolist()
    # An empty request scores one empty block (the cold path reuses the known-user one).
    empty = average_module.recommend(tf.constant([], tf.string), tf.constant(5))
    assert empty["movie_ids"].shape == empty["scores"].shape == (0, 5)


class _PairwiseOnly(DeepFM):
    """A model with only the reference scorer: `score_all` / `score_gathered` fall back to the
    base class (the network on every pair). Its own `score_pairs` halves DeepFM's logits."""

    def score_pairs(self, query, candidates, training=False):
        return super().score_pairs(query, candidates, training) * 0.5

    score_all = Recommender.score_all
    score_gathered = Recommender.score_gathered


def test_models_without_a_factorised_scorer_are_scored_pair_by_pair(model, store, movielens):
    other = _PairwiseOnly(
        model.query_tower, model.candidate_tower, dnn_units=(16,), dropout=0.0,
        batch_norm=False, retrieval_weight=0.0, history_length=model.history_length,
    )  # fmt: skip
    module = RecommenderModule(other, store, build_catalogue(store, movielens.seen))
    top = module.recommend(tf.constant(["196", "3"]), tf.constant(6))
    for row, user in enumerate(["196", "3"]):
        pairs = {"user_id": tf.constant([user] * 6), "movie_id": top["movie_ids"][row]}
        direct = other.score(store.join(pairs))
        np.testing.assert_allclose(top["scores"][row], direct, rtol=1e-5, atol=1e-6)
        seen = movielens.seen[1][movielens.seen[0] == user]
        assert not set(_decode(top["movie_ids"][row]).tolist()) & set(seen.tolist())
    # Nothing scores higher than the returned sixth among the user's unseen movies.
    movies = store.movie_ids.numpy()
    pairs = {"user_id": tf.constant(["196"] * len(movies)), "movie_id": tf.constant(movies)}
    every = other.score(store.join(pairs)).numpy()
    unseen = ~np.isin(_decode(movies), movielens.seen[1][movielens.seen[0] == "196"])
    np.testing.assert_allclose(top["scores"][0], -np.sort(-every[unseen])[:6], rtol=1e-5)


def test_bad_export_arguments_name_the_field(model, store, movielens):
    catalogue = build_catalogue(store, movielens.seen)
    with pytest.raises(ValueError, match="cold_start='nobody'"):
        RecommenderModule(model, store, catalogue, cold_start="nobody")
    with pytest.raises(TypeError, match="Received: model=Sequential"):
        RecommenderModule(tf.keras.Sequential(), store, catalogue)
    bare = type(store)(None, {"movie_id": store.movie_ids.numpy()})  # no side features
    with pytest.raises(ValueError, match="recent_movie_ids"):
        RecommenderModule(model, bare, build_catalogue(bare, ([], [])))

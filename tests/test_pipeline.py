"""TwoStagePipeline: equals exact ranking with every movie retrieved, excludes seen movies,
falls back to popularity, and its SavedModel answers the same without tfrec installed."""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import build_model
from tfrec.pipeline import TwoStagePipeline, export_pipeline
from tfrec.retrieval import positives_dataset, synthetic_catalogue
from tfrec.training import RankingData, feature_store

USERS = ["1", "7", "30", "nobody"]


@pytest.fixture(scope="module")
def setup():
    data = RankingData.from_movielens(synthetic_catalogue(40, 60, 8, seed=1), history_length=4)
    table = data.example_table()
    retrieval = build_model("two_tower", table, embedding_dim=8, units=(8,))
    retrieval.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)
    retrieval.fit(positives_dataset(retrieval, data, batch_size=64), epochs=1, verbose=0)
    ranking = build_model("deepfm", table, embedding_dim=8, dnn_units=(8,))
    ranking.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)
    ranking.fit(data.dataset(ranking, 1, batch_size=64), epochs=1, verbose=0)
    seen_table = data.exclude["test"]
    store = feature_store(data.movielens, seen_table, 4)
    seen = (seen_table["user_id"], seen_table["movie_id"])
    return data, retrieval, ranking, store, seen


def recommend(module, k, users=USERS):
    out = module.recommend(tf.constant(users), tf.constant(k))
    return {key: value.numpy() for key, value in out.items()}


def exact_ranking(ranking, store, seen, users, k):
    """Top-k unseen movies by the ranking model over the whole catalogue, in numpy."""
    movies = store.movie_ids.numpy()
    pairs = {
        "user_id": tf.constant(np.repeat(users, len(movies))),
        "movie_id": tf.constant(np.tile(movies, len(users))),
    }
    scores = tf.sigmoid(ranking(store.join(pairs))).numpy().reshape(len(users), len(movies))
    watched = {(u, m) for u, m in zip(*seen, strict=True)}
    mask = np.array([[(u, m.decode()) in watched for m in movies] for u in users])
    scores = np.where(mask, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return movies[order], np.take_along_axis(scores, order, axis=1)


def test_all_candidates_equals_exact_ranking(setup):
    _, retrieval, ranking, store, seen = setup
    pipeline = TwoStagePipeline(retrieval, ranking, store, seen, num_candidates=60)
    got = recommend(pipeline, 6, USERS[:3])
    ids, scores = exact_ranking(ranking, store, seen, USERS[:3], 6)
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-5)
    np.testing.assert_array_equal(got["movie_ids"], ids)
    titles = store.movies.columns["movie_title"].numpy()[:-1]  # the last row is "missing"
    titles = dict(zip(store.movie_ids.numpy(), titles, strict=True))
    np.testing.assert_array_equal(got["titles"], np.vectorize(titles.get)(ids))


def test_seen_movies_are_never_returned_and_cold_start_is_popular(setup):
    data, retrieval, ranking, store, seen = setup
    pipeline = TwoStagePipeline(retrieval, ranking, store, seen, num_candidates=5)
    got = recommend(pipeline, 58)  # more than num_candidates (retrieves k) and than unseen
    watched = {(u, m) for u, m in zip(*seen, strict=True)}
    for user, row in zip(USERS[:3], got["movie_ids"][:3], strict=True):
        returned = [m.decode() for m in row if m]
        assert not {(user, m) for m in returned} & watched
        assert len(returned) == 60 - sum(1 for u, _ in watched if u == user)
    counts = np.bincount(data.exclude["test"]["movie_index"], minlength=60)
    popular = np.argsort(-counts, kind="stable")[:5]
    np.testing.assert_array_equal(got["movie_ids"][3][:5], store.movie_ids.numpy()[popular])
    np.testing.assert_allclose(got["scores"][3][:5], counts[popular] / counts.max(), rtol=1e-6)


def test_ivf_pipeline_ranks_its_candidates(setup):
    _, retrieval, ranking, store, seen = setup
    pipeline = TwoStagePipeline(
        retrieval, ranking, store, seen, num_candidates=10, index="ivf", nlist=6, nprobe=2
    )
    candidates = pipeline.candidates(tf.constant(USERS[:3]), tf.constant(10), tf.constant(2))
    got = recommend(pipeline, 4, USERS[:3])
    for row, pool in zip(got["movie_ids"], candidates["movie_ids"].numpy(), strict=True):
        assert set(row) <= set(pool)
    assert (np.diff(got["scores"], axis=1) <= 0).all()


def test_bad_arguments_are_named(setup):
    _, retrieval, ranking, store, seen = setup
    with pytest.raises(TypeError, match="retrieval_model"):
        TwoStagePipeline(ranking, ranking, store, seen)
    with pytest.raises(ValueError, match="num_candidates"):
        TwoStagePipeline(retrieval, ranking, store, seen, num_candidates=0)
    with pytest.raises(ValueError, match="index"):
        TwoStagePipeline(retrieval, ranking, store, seen, index="scann")


_LOAD = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    sigs = tf.saved_model.load(sys.argv[1]).signatures
    users = tf.constant(json.loads(sys.argv[2]))
    top = sigs["recommend"](user_id=users, k=tf.constant(5))
    pool = sigs["candidates"](user_id=users, n=tf.constant(8), nprobe=tf.constant(2))
    print(json.dumps({
        "movie_ids": top["movie_ids"].numpy().astype(str).tolist(),
        "scores": top["scores"].numpy().tolist(),
        "titles": top["titles"].numpy().astype(str).tolist(),
        "pool": pool["movie_ids"].numpy().astype(str).tolist(),
        "tfrec": sorted(m for m in sys.modules if m.split(".")[0] == "tfrec"),
    }))
    """
)


def test_savedmodel_loads_without_tfrec_and_matches(setup, tmp_path):
    _, retrieval, ranking, store, seen = setup
    pipeline = TwoStagePipeline(
        retrieval, ranking, store, seen, num_candidates=10, index="ivf", nlist=6, nprobe=2
    )
    path = export_pipeline(pipeline, tmp_path / "models", name="two_stage")
    assert path.name == "1" and (tmp_path / "models" / "models.config").exists()
    script = tmp_path / "load.py"
    script.write_text(_LOAD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, str(script), str(path), json.dumps(USERS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tfrec"] == []
    expected = recommend(pipeline, 5)
    assert result["movie_ids"] == expected["movie_ids"].astype(str).tolist()
    assert result["titles"] == expected["titles"].astype(str).tolist()
    np.testing.assert_allclose(result["scores"], expected["scores"], rtol=1e-5)
    pool = pipeline.candidates(tf.constant(USERS), tf.constant(8), tf.constant(2))["movie_ids"]
    assert result["pool"] == pool.numpy().astype(str).tolist()

"""TwoStagePipeline: equals exact ranking with every movie retrieved, excludes seen movies,
falls back to popularity, ranks offline candidates (BruteForce, FAISS), and its SavedModel
answers the same without tfrec installed."""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.features.inputs import feature_store
from tfrec.models import build_model
from tfrec.pipeline import TwoStagePipeline, export_pipeline
from tfrec.retrieval import BruteForce
from tfrec.training import training_dataset

USERS = ["1", "7", "30", "nobody"]
HISTORY = 4


def _fit_one_epoch(model, data):
    """One eager epoch on the library's pipeline for the model's task (fast on tiny data)."""
    model.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)
    batches = training_dataset(
        model, data, num_negatives=1, batch_size=64, distribution="uniform", seed=0
    )
    model.fit(batches, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def setup():
    """Data, a two-tower retriever and a DeepFM ranker, the store and seen pairs as of test."""
    data = SplitData.from_movielens(
        synthetic_movielens(num_users=40, num_movies=60, ratings_per_user=8, seed=1)
    )
    retrieval = build_model("two_tower", data, embedding_dim=8, units=(8,), history_length=HISTORY)
    ranking = build_model("deepfm", data, embedding_dim=8, dnn_units=(8,), history_length=HISTORY)
    _fit_one_epoch(retrieval, data)
    _fit_one_epoch(ranking, data)
    store = feature_store(data, "test", HISTORY)
    known = data.known("test")
    return data, retrieval, ranking, store, (known["user_id"], known["movie_id"])


@pytest.fixture(scope="module")
def brute(setup):
    """An exact (brute-force) pipeline retrieving 5 candidates (at least k per request)."""
    _, retrieval, ranking, store, seen = setup
    return TwoStagePipeline(retrieval, ranking, store, seen, num_candidates=5)


@pytest.fixture(scope="module")
def ivf(setup):
    """An approximate (IVF) pipeline retrieving 10 candidates from 2 of 6 cells."""
    _, retrieval, ranking, store, seen = setup
    return TwoStagePipeline(
        retrieval, ranking, store, seen, num_candidates=10, index="ivf", nlist=6, nprobe=2
    )


def recommend(module, k, users=USERS):
    out = module.recommend(tf.constant(users, tf.string), tf.constant(k))
    return {key: value.numpy() for key, value in out.items()}


def user_index(data, users):
    position = {u: i for i, u in enumerate(data.user_ids)}
    return np.array([position[u] for u in users])


def exact_ranking(data, ranking, store, users, k):
    """Top-k unseen movies by the ranking model over the whole catalogue, in numpy."""
    movies = store.movie_ids.numpy()
    pairs = {
        "user_id": tf.constant(np.repeat(users, len(movies))),
        "movie_id": tf.constant(np.tile(movies, len(users))),
    }
    scores = ranking.score(store.join(pairs)).numpy().reshape(len(users), len(movies))
    scores[data.seen("test").dense_mask(user_index(data, users))] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return movies[order], np.take_along_axis(scores, order, axis=1)


def test_every_movie_retrieved_equals_exact_ranking(setup, brute):
    data, _, ranking, store, _ = setup
    got = recommend(brute, 60, USERS[:3])  # k = the catalogue: every movie is a candidate
    ids, scores = exact_ranking(data, ranking, store, USERS[:3], 60)
    unseen = np.isfinite(scores)
    np.testing.assert_allclose(got["scores"][unseen], scores[unseen], rtol=1e-5)
    np.testing.assert_array_equal(got["movie_ids"][unseen], ids[unseen])
    assert (got["movie_ids"][~unseen] == b"").all() and not got["scores"][~unseen].any()
    titles = dict(zip(data.item_ids, data.items["movie_title"], strict=True))
    expected = [[titles[m.decode()] for m in row] for row in ids[:, :6]]
    assert np.char.decode(got["titles"][:, :6].astype(bytes)).tolist() == expected


def test_seen_movies_are_never_returned_and_cold_start_is_popular(setup, brute):
    data = setup[0]
    pipeline = brute
    got = recommend(pipeline, 58)  # more than num_candidates (retrieves k) and than unseen
    mask = data.seen("test").dense_mask(user_index(data, USERS[:3]))
    position = {m: i for i, m in enumerate(data.item_ids)}
    for row, ids in enumerate(got["movie_ids"][:3]):
        returned = [position[m.decode()] for m in ids if m]
        assert not mask[row, returned].any()
        assert len(returned) == 60 - mask[row].sum()  # every unseen movie, nothing else
    counts = data.item_counts("test")
    popular = np.argsort(-counts, kind="stable")[:5]
    np.testing.assert_array_equal(got["movie_ids"][3][:5].astype(str), data.item_ids[popular])
    np.testing.assert_allclose(got["scores"][3][:5], counts[popular] / counts.max(), rtol=1e-6)
    empty = recommend(pipeline, 3, [])
    assert empty["movie_ids"].shape == empty["scores"].shape == (0, 3)


def test_ivf_pipeline_ranks_its_candidates(ivf):
    pipeline = ivf
    candidates = pipeline.candidates(tf.constant(USERS[:3]), tf.constant(10), tf.constant(2))
    got = recommend(pipeline, 4, USERS[:3])
    for row, pool in zip(got["movie_ids"], candidates["movie_ids"].numpy(), strict=True):
        assert set(row) <= set(pool)
    assert (np.diff(got["scores"], axis=1) <= 0).all()


def test_catalogue_and_query_vectors_are_the_retrievers_dot_product(setup, brute):
    data, retrieval, _, store, _ = setup
    pipeline = brute
    items = pipeline.catalogue_vectors()
    queries = pipeline.query_vectors(tf.constant(USERS)).numpy()
    assert items.shape == (data.num_items, 8) and queries.shape == (len(USERS), 8)
    # Unit vectors whose dot product is the retriever's own logit (times its temperature).
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    pairs = store.join(
        {"user_id": tf.constant(np.repeat(USERS, 3)), "movie_id": tf.constant(["1", "2", "3"] * 4)}
    )
    logits = retrieval(pairs, training=False).numpy().reshape(len(USERS), 3)
    np.testing.assert_allclose(
        queries @ items[:3].T, logits * retrieval.temperature, rtol=1e-4, atol=1e-5
    )
    # The `candidates` signature searches exactly these vectors, seen movies left out.
    pool = pipeline.candidates(tf.constant(USERS[:3]), tf.constant(5), tf.constant(1))
    scores = queries[:3] @ items.T
    scores[data.seen("test").dense_mask(user_index(data, USERS[:3]))] = -np.inf
    np.testing.assert_allclose(pool["scores"].numpy(), -np.sort(-scores, axis=1)[:, :5], rtol=1e-5)


def _faiss_search(vectors, queries, n):
    pytest.importorskip("faiss")
    from tfrec.retrieval import FaissIndex

    return FaissIndex.build(vectors, kind="flat").search(queries, n)[1]


def _brute_force_search(vectors, queries, n):
    return BruteForce(vectors).search(queries, n)[1].numpy()


@pytest.mark.parametrize("search", [_brute_force_search, _faiss_search], ids=["brute", "faiss"])
def test_rank_candidates_from_an_offline_index(setup, brute, search):
    data = setup[0]
    pipeline = brute
    users = USERS[:3]
    queries = pipeline.query_vectors(tf.constant(users)).numpy()
    candidates = search(pipeline.catalogue_vectors(), queries, 15)  # no exclusion offline
    mask = data.seen("test").dense_mask(user_index(data, users))
    first_seen = mask.argmax(axis=1)  # make sure each row holds a seen movie, and padding
    candidates = np.concatenate([candidates, first_seen[:, None], np.full((3, 1), -1)], axis=1)
    scores, found = pipeline.rank_candidates(users, candidates, k=5)
    assert scores.shape == found.shape == (3, 5)
    rows = np.arange(3)[:, None]
    assert (found >= 0).all() and not mask[rows, found].any()
    assert all(set(f) <= set(c) for f, c in zip(found, candidates, strict=True))
    # The same as rank() on those candidates with the seen ones dropped.
    ranked = pipeline.rank(tf.constant(users), tf.constant(candidates, tf.int64)).numpy()
    ranked[mask[rows, np.maximum(candidates, 0)]] = -np.inf
    np.testing.assert_allclose(scores, -np.sort(-ranked, axis=1)[:, :5], rtol=1e-5)
    np.testing.assert_allclose(scores, np.take_along_axis(ranked, _positions(candidates, found), 1))


def _positions(candidates, found):
    return np.array(
        [[list(c).index(f) for f in row] for c, row in zip(candidates, found, strict=True)]
    )


def test_bad_arguments_are_named(setup):
    _, retrieval, ranking, store, seen = setup
    with pytest.raises(TypeError, match="dot_product = True.*Received: DeepFM"):
        TwoStagePipeline(ranking, ranking, store, seen)
    with pytest.raises(ValueError, match="num_candidates"):
        TwoStagePipeline(retrieval, ranking, store, seen, num_candidates=0)
    with pytest.raises(ValueError, match="index"):
        TwoStagePipeline(retrieval, ranking, store, seen, index="scann")
    with pytest.raises(ValueError, match="holds 3 vectors"):
        TwoStagePipeline(retrieval, ranking, store, seen, index=BruteForce(np.eye(3, 8)))


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


def test_savedmodel_loads_without_tfrec_and_matches(ivf, tmp_path):
    pipeline = ivf
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


# ------------------------------------------------------------------ a sequential retriever


@pytest.fixture(scope="module")
def sequential_setup(fitted_sasrec, cyclic_data):
    """The SASRec fit on cyclic watchers as retriever, a DeepFM ranker on the same data, the
    store (histories of 8) and seen pairs as of test."""
    data = cyclic_data
    ranking = build_model("deepfm", data, embedding_dim=8, dnn_units=(8,), history_length=8)
    _fit_one_epoch(ranking, data)
    store = feature_store(data, "test", 8)
    known = data.known("test")
    pipeline = TwoStagePipeline(
        fitted_sasrec.model, ranking, store, (known["user_id"], known["movie_id"]),
        num_candidates=5,
    )  # fmt: skip
    return data, fitted_sasrec.model, ranking, store, pipeline


def test_sasrec_retrieves_by_its_query_vector_and_deepfm_ranks(sequential_setup):
    data, sasrec, ranking, store, pipeline = sequential_setup
    users = data.user_ids[:12]
    # Stage one: the SASRec query (newest position of its history) against its item table.
    queries = pipeline.query_vectors(tf.constant(users)).numpy()
    expected = sasrec.encode_query(store.join({"user_id": tf.constant(users)}))["vector"]
    np.testing.assert_allclose(queries, expected, rtol=1e-5, atol=1e-6)
    table = sasrec.candidate_tower.encoder("movie_id").embedding.embeddings.numpy()
    vocabulary = sasrec.candidate_tower.encoder("movie_id").vocabulary
    rows = [vocabulary.index(m) + 1 if m in vocabulary else 0 for m in data.item_ids]
    np.testing.assert_allclose(pipeline.catalogue_vectors(), table[rows], rtol=1e-6)
    scores = queries @ table[rows].T
    scores[data.seen("test").dense_mask(user_index(data, users))] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    retrieved_scores, retrieved = (t.numpy() for t in pipeline.retrieve(tf.constant(users), 5))
    np.testing.assert_array_equal(np.sort(retrieved, 1), np.sort(top, 1))
    np.testing.assert_allclose(retrieved_scores, np.take_along_axis(scores, top, 1), rtol=1e-5)
    # The retriever knows the cycle: the held-out next movie is among its 5 for most users.
    test_users, targets = data.targets("test")
    pool = pipeline.candidates(tf.constant(data.user_ids[test_users]), tf.constant(5),
                               tf.constant(1))["movie_ids"].numpy().astype(str)  # fmt: skip
    hits = np.mean([t in row for t, row in zip(data.item_ids[targets], pool, strict=True)])
    assert hits >= 0.8, hits
    # Stage two: DeepFM orders those 5 candidates.
    got = recommend(pipeline, 3, list(users))
    pairs = store.join(
        {
            "user_id": tf.constant(np.repeat(users, 5)),
            "movie_id": tf.constant(data.item_ids[retrieved.ravel()]),
        }
    )
    ranked = ranking.score(pairs).numpy().reshape(len(users), 5)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :3]
    np.testing.assert_allclose(got["scores"], np.take_along_axis(ranked, order, 1), rtol=1e-5)
    np.testing.assert_array_equal(
        got["movie_ids"].astype(str), data.item_ids[np.take_along_axis(retrieved, order, 1)]
    )


def test_sequential_retriever_with_everything_retrieved_is_exact_ranking(sequential_setup):
    data, _, ranking, store, pipeline = sequential_setup
    users = list(data.user_ids[:3])
    got = recommend(pipeline, 60, users)  # k = the catalogue: every movie is a candidate
    ids, scores = exact_ranking(data, ranking, store, users, 60)
    unseen = np.isfinite(scores)
    np.testing.assert_allclose(got["scores"][unseen], scores[unseen], rtol=1e-5)
    np.testing.assert_array_equal(got["movie_ids"][unseen], ids[unseen])

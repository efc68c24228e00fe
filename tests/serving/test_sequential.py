"""A sequential model's export: ``recommend_sequence`` serves live sessions by their items.

One SASRec fit on users who watch movies in a fixed cycle (``fitted_sasrec``) is exported as of
"all". A session is served by the same query the model computes (checked against the Keras
model), never gets its own movies back, and predicts the cycle's next movie; a known user's full
history as a session gets exactly what ``recommend`` gives that user; the export answers the same
in a process that never imports tfrec.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.towers import RECENT_MOVIES
from tfrec.serving import export_model

NUM_MOVIES = 60  # cyclic_data: movie ids "1".."60", watched in this order (mod 60)


@pytest.fixture(scope="module")
def export(fitted_sasrec, cyclic_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("sequential_exports")
    return export_model(fitted_sasrec.model, cyclic_data, as_of="all", base_dir=base, name="sasrec")


@pytest.fixture(scope="module")
def signatures(export):
    return tf.saved_model.load(str(export)).signatures


def cycle(start, length):
    """Movie ids of `length` consecutive movies of the cycle from index `start`."""
    return [str((start + j) % NUM_MOVIES + 1) for j in range(length)]


def serve(signatures, sessions, k):
    width = max(len(s) for s in sessions)
    padded = [[""] * (width - len(s)) + list(s) for s in sessions]
    out = signatures["recommend_sequence"](movie_ids=tf.constant(padded), k=tf.constant(k))
    return {key: value.numpy() for key, value in out.items()}


def test_signatures_include_recommend_sequence(signatures):
    assert {"serving_default", "score_features", "recommend", "recommend_sequence"} <= set(
        signatures
    )
    specs = signatures["recommend_sequence"].structured_input_signature[1]
    assert specs["movie_ids"].shape.as_list() == [None, None]
    assert specs["movie_ids"].dtype == tf.string and specs["k"].dtype == tf.int32


def test_sessions_are_scored_by_the_models_query(signatures, fitted_sasrec, cyclic_data):
    model = fitted_sasrec.model
    sessions = [cycle(5, 3), cycle(40, 8), cycle(58, 11)]
    got = serve(signatures, sessions, 5)
    padded = [[""] * (11 - len(s)) + s for s in sessions]
    query = model.encode_query({RECENT_MOVIES: tf.constant(padded)})["vector"].numpy()
    items = model.candidate_tower({"movie_id": tf.constant(cyclic_data.item_ids)})["pooled"]
    scores = query @ items.numpy().T
    for row, session in enumerate(sessions):
        scores[row, np.isin(cyclic_data.item_ids, session)] = -np.inf
    order = np.argsort(-scores, axis=1)[:, :5]
    np.testing.assert_array_equal(got["movie_ids"].astype(str), cyclic_data.item_ids[order])
    np.testing.assert_allclose(got["scores"], np.take_along_axis(scores, order, 1), rtol=1e-5)
    titles = dict(zip(cyclic_data.item_ids, cyclic_data.items["movie_title"], strict=True))
    assert got["titles"][0, 0].decode() == titles[got["movie_ids"][0, 0].decode()]


def test_a_session_never_gets_its_own_movies_back(signatures):
    sessions = [cycle(0, 1), cycle(20, 7), ["9", "no-such-movie", "9", "31"]]
    got = serve(signatures, sessions, NUM_MOVIES)  # k = the whole catalogue
    for session, ids in zip(sessions, got["movie_ids"].astype(str), strict=True):
        returned = ids[ids != ""]
        known = set(session) - {"no-such-movie"}
        assert not known & set(returned)
        assert len(returned) == len(set(returned)) == NUM_MOVIES - len(known)


def test_a_session_predicts_the_next_movie_of_the_cycle(signatures):
    starts = np.arange(0, NUM_MOVIES, 3)
    got = serve(signatures, [cycle(s, 5) for s in starts], 1)["movie_ids"][:, 0].astype(str)
    hits = np.mean([movie == cycle(s + 5, 1)[0] for s, movie in zip(starts, got, strict=True)])
    assert hits >= 0.7, hits  # an untrained model: about 1 in 55


def test_a_known_users_history_as_a_session_equals_recommend(signatures, cyclic_data):
    """The export keeps each user's newest 8 movies and excludes all 12 seen; a session of all
    12, oldest first, keeps the same 8 for the query and excludes the same 12."""
    known = cyclic_data.known("all")
    users = cyclic_data.user_ids[:6]
    sessions = []
    for user in users:
        mine = known["user_id"] == user
        order = np.argsort(known["timestamp"][mine], kind="stable")
        sessions.append(list(known["movie_id"][mine][order]))
    assert {len(s) for s in sessions} == {12}
    by_session = serve(signatures, sessions, 10)
    by_user = signatures["recommend"](user_id=tf.constant(users), k=tf.constant(10))
    np.testing.assert_array_equal(by_session["movie_ids"], by_user["movie_ids"].numpy())
    np.testing.assert_allclose(by_session["scores"], by_user["scores"].numpy(), rtol=1e-6)
    # Only the newest 8 shape the query: the oldest 4 are excluded but not read.
    truncated = serve(signatures, [s[4:] for s in sessions], NUM_MOVIES)
    full = serve(signatures, sessions, NUM_MOVIES)
    for row, session in enumerate(sessions):
        score = dict(zip(truncated["movie_ids"][row], truncated["scores"][row], strict=True))
        for movie, value in zip(full["movie_ids"][row], full["scores"][row], strict=True):
            if movie:
                assert value == pytest.approx(score[movie], rel=1e-6), (row, movie)
        assert not set(session[:4]) & {m.decode() for m in full["movie_ids"][row]}


_WITHOUT_TFREC = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    sigs = tf.saved_model.load(sys.argv[1]).signatures
    sessions = json.loads(sys.argv[2])
    top = sigs["recommend_sequence"](movie_ids=tf.constant(sessions), k=tf.constant(4))
    print("RESULT" + json.dumps({
        "movie_ids": top["movie_ids"].numpy().astype(str).tolist(),
        "scores": top["scores"].numpy().tolist(),
        "tfrec_imported": sorted(m for m in sys.modules if m.split(".")[0] == "tfrec"),
    }))
    """
)


def test_sessions_are_served_without_tfrec(export, signatures, tmp_path):
    sessions = [["", "", *cycle(10, 3)], cycle(30, 5)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TFREC, str(export), json.dumps(sessions)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["tfrec_imported"] == []
    expected = serve(signatures, sessions, 4)
    assert result["movie_ids"] == expected["movie_ids"].astype(str).tolist()
    np.testing.assert_allclose(result["scores"], expected["scores"], rtol=1e-6)

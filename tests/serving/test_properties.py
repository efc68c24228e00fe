"""Property-based tests (Hypothesis) of the exported signatures and `LocalServing` bodies.

Whatever a client sends, the answer is defined: a result that agrees with calling the
signature directly on the same tensors, or TF Serving's ``{"error": ...}`` naming the input
at fault, never an exception, a hang or a silently different answer (issue 14). Derandomized,
so every run checks the same examples.
"""

import tfrec  # noqa: F401  # isort: skip
import base64
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfrec.serving import load_recommender

pytestmark = pytest.mark.filterwarnings("ignore")

PROPERTIES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
INT32_MAX = 2**31 - 1
RESPONSE_KEYS = {"predictions", "outputs", "error"}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
ids = st.sampled_from(["196", "1", "242", "42", "heavy", ""]) | st.text(
    st.characters(codec="utf-8"), max_size=6
)


def _answer(served, body) -> dict:
    """`served.rest(body)`, checked to have exactly one of TF Serving's response keys."""
    response = served.rest(body)
    assert isinstance(response, dict) and len(response) == 1, response
    (key,) = response
    assert key in RESPONSE_KEYS, response
    if key == "error":
        assert isinstance(response["error"], str) and response["error"].strip()
    return response


def _error_names(response, name):
    assert "error" in response, response
    assert name in response["error"], response


@PROPERTIES
@given(
    body=json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "signature_name": st.sampled_from(["serving_default", "recommend", "nope"])
            | json_values,
            "instances": json_values,
            "inputs": json_values,
        },
    )
)
def test_any_json_body_gets_a_response_or_an_error_never_an_exception(served, body):
    response = _answer(served, body)
    if not isinstance(body, str):  # (a str body is JSON text already)
        text = json.dumps(body)  # the same body as JSON text and as bytes: the same answer
        assert served.rest(text) == response == served.rest(text.encode())


@PROPERTIES
@given(text=st.text(max_size=30) | st.binary(max_size=30))
def test_any_text_or_bytes_body_gets_a_response_or_an_error(served, text):
    _answer(served, text)


@PROPERTIES
@given(pairs=st.lists(st.tuples(ids, ids), min_size=1, max_size=5), rows=st.booleans())
def test_scores_equal_the_signature_called_directly(served, pairs, rows):
    users, movies = [list(column) for column in zip(*pairs, strict=True)]
    body = (
        {"instances": [{"user_id": u, "movie_id": m} for u, m in pairs]}
        if rows
        else {"inputs": {"user_id": users, "movie_id": movies}}
    )
    got = _answer(served, body)["predictions" if rows else "outputs"]
    direct = served.signatures["serving_default"](
        user_id=tf.constant([u.encode() for u in users], tf.string),
        movie_id=tf.constant([m.encode() for m in movies], tf.string),
    )["score"].numpy()
    assert got == direct.tolist()
    assert all(0.0 <= s <= 1.0 for s in got)


@PROPERTIES
@given(
    users=st.lists(ids, min_size=0, max_size=4),
    k=st.integers(-(2**64), 2**64)
    | st.sampled_from([0, 1, 319, 320, 321, INT32_MAX, INT32_MAX + 1, 2**32 + 2, -1])
    | st.booleans()
    | st.floats()
    | st.text(max_size=3)
    | st.none(),
)
def test_recommend_k_is_in_range_or_an_error_naming_k(served, movielens, users, k):
    response = _answer(
        served, {"signature_name": "recommend", "inputs": {"user_id": users, "k": k}}
    )
    valid = isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= INT32_MAX
    if not valid:
        _error_names(response, "k")
        return
    out = response["outputs"]
    width = min(k, movielens.num_movies)
    direct = served.signatures["recommend"](
        user_id=tf.constant([u.encode() for u in users], tf.string), k=tf.constant(k, tf.int32)
    )
    decoded = np.char.decode(direct["movie_ids"].numpy().astype(bytes), "utf-8")
    assert decoded.shape == (len(users), width)
    if users:
        assert out["movie_ids"] == decoded.tolist()
    else:  # an empty batch: TF Serving's JSON of a [0, k] tensor is []
        assert out["movie_ids"] == []


@pytest.fixture(scope="module")
def recommend(exports):
    return load_recommender(exports.popular)


@PROPERTIES
@given(k=st.integers(-(2**70), 2**70) | st.booleans() | st.floats(allow_nan=False))
def test_exported_recommender_clips_k_or_raises_naming_it(recommend, movielens, k):
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        with pytest.raises(ValueError, match="`k` must be an integer >= 0"):
            recommend(["196"], k)
        return
    movie_ids, scores, titles = recommend(["196"], k)
    assert movie_ids.shape == scores.shape == titles.shape == (1, min(k, movielens.num_movies))


@PROPERTIES
@given(raw=st.binary(max_size=12), junk=st.text(max_size=6))
def test_b64_user_ids_equal_the_raw_bytes_or_an_error_naming_the_input(served, raw, junk):
    encoded = base64.b64encode(raw).decode()
    inputs = {"user_id": [{"b64": encoded}], "k": 3}
    got = _answer(served, {"signature_name": "recommend", "inputs": inputs})["outputs"]
    direct = served.signatures["recommend"](user_id=tf.constant([raw]), k=tf.constant(3))
    assert got["scores"] == direct["scores"].numpy().tolist()
    # Any other string under "b64": decoded exactly as base64.b64decode(validate=True) would.
    inputs = {"user_id": [{"b64": junk}], "k": 3}
    response = _answer(served, {"signature_name": "recommend", "inputs": inputs})
    try:
        decoded = base64.b64decode(junk, validate=True)
    except ValueError:
        _error_names(response, "'user_id'")
        return
    direct = served.signatures["recommend"](user_id=tf.constant([decoded]), k=tf.constant(3))
    assert response["outputs"]["scores"] == direct["scores"].numpy().tolist()


NUMERIC = st.floats(allow_nan=True, allow_infinity=True, width=32)


@PROPERTIES
@given(
    ages=st.lists(NUMERIC, min_size=1, max_size=3),
    extra_rows=st.sampled_from([0, 0, 1, -1]),
    genres=st.lists(st.integers(-1, 30), min_size=1, max_size=3),
    gender=st.booleans(),
)
def test_score_features_scores_or_names_the_input_at_fault(
    served, ages, extra_rows, genres, gender
):
    n = len(ages)
    titles = ["Kolya (1996)"] * max(n + extra_rows, 0)
    body = {
        "signature_name": "score_features",
        "inputs": {
            "user_id": ["new-user"] * n,
            "user_gender": [gender] * n,
            "bucketized_user_age": ages,
            "user_occupation_text": ["writer"] * n,
            "user_zip_code": ["55105"] * n,
            "recent_movie_ids": [["50", "181", "1"]] * n,
            "movie_id": ["242"] * n,
            "movie_genres": [genres] * n,
            "movie_title": titles,
        },
    }
    response = _answer(served, body)
    if extra_rows:
        _error_names(response, "`movie_title` has")
    elif any(math.isinf(a) for a in ages):
        _error_names(response, "`bucketized_user_age` must not be inf")
    else:  # NaN is the "missing" value: a defined score
        scores = response["outputs"]
        assert len(scores) == n and all(0.0 <= s <= 1.0 for s in scores)

"""LocalServing (TF Serving's Predict API in process), load_recommender and `tfrec recommend`.

Bodies TF Serving refuses get its REST error layout, ``{"error": "<message>"}``, with a message
naming the input, the value and the fix (issue 14, finding 9); k never wraps around in int32
(finding 6); `tfrec recommend` prints only real rows and says when it clipped k (finding 12).
"""

import tfrec  # noqa: F401  # isort: skip
import base64
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from tfrec.serving import load_recommender
from tfrec.serving.warmup import predict_request
from tfrec.workflow import recommend_lines


def test_row_and_columnar_bodies_give_the_same_scores(served):
    rows = served.rest(
        {"instances": [{"user_id": "196", "movie_id": "242"}, {"user_id": "1", "movie_id": "2"}]}
    )
    columns = served.rest(
        json.dumps({"inputs": {"user_id": ["196", "1"], "movie_id": ["242", "2"]}})
    )
    # One output: TF Serving drops its name in both formats.
    assert len(rows["predictions"]) == 2 and isinstance(rows["predictions"][0], float)
    np.testing.assert_allclose(rows["predictions"], columns["outputs"], rtol=1e-6)


def test_several_outputs_are_objects_per_row_or_per_name(served):
    body = {"user_id": ["196", "1"], "k": 3}
    columns = served.rest({"signature_name": "recommend", "inputs": body})["outputs"]
    assert sorted(columns) == ["movie_ids", "scores", "titles"]
    assert np.shape(columns["movie_ids"]) == (2, 3)
    assert all(isinstance(v, str) for v in columns["titles"][0])
    # Row format cannot carry the scalar k: every row input gets a batch dimension.
    body = {"signature_name": "recommend", "instances": [{"user_id": "1", "k": 3}]}
    assert "Input 'k' must have shape" in _error(served, body)


def _error(served, body) -> str:
    response = served.rest(body)
    assert list(response) == ["error"], response
    assert isinstance(response["error"], str) and response["error"]
    return response["error"]


_RECOMMEND = {"signature_name": "recommend"}
_FEATURES = {"signature_name": "score_features"}
NEW_USER = {  # the README's score_features example: a user the export has never seen
    "user_id": ["new-user"],
    "user_gender": [True],
    "bucketized_user_age": [25.0],
    "user_occupation_text": ["writer"],
    "user_zip_code": ["55105"],
    "recent_movie_ids": [["50", "181", "1"]],
    "movie_id": ["242"],
    "movie_genres": [[4, 7, -1]],
    "movie_title": ["Kolya (1996)"],
}
BAD_BODIES = {
    "list body": ([{"user_id": "1"}], ["must be a JSON object", "a JSON array"]),
    "null body": (None, ["must be a JSON object", "null"]),
    "number body": (3, ["must be a JSON object", "a JSON number"]),
    "list JSON text": ("[1, 2]", ["must be a JSON object", "[1, 2]"]),
    "invalid JSON": ('{"instances": [', ["JSON parse error", "offset 15"]),
    "not UTF-8": (b'{"inputs": "\xff"}', ["not UTF-8", "0xff"]),
    "bad base64 padding": (
        {"instances": [{"user_id": {"b64": "abc"}, "movie_id": "242"}]},
        ["Input 'user_id'", '{"b64": "abc"}', "not valid base64"],
    ),
    "b64 not a string": (
        {"instances": [{"user_id": {"b64": 123}, "movie_id": "242"}]},
        ["Input 'user_id'", "not formatted correctly for base64"],
    ),
    "ragged row": (
        {"inputs": {"user_id": [["1"], "2"], "movie_id": ["1", "2"]}},
        ["Input 'user_id' is ragged", "user_id[1]"],
    ),
    "unknown key, row format": (
        {"instances": [{"user_id": "1", "movie_id": "2", "extra": 3}]},
        ["instances[0]", "unknown: ['extra']"],
    ),
    "unknown key, columnar": (
        {"inputs": {"user_id": ["1"], "movie_id": ["2"], "extra": 3}},
        ["unknown: ['extra']"],
    ),
    "missing key, row format": ({"instances": [{"user_id": "1"}]}, ["Missing: ['movie_id']"]),
    "missing input": ({"inputs": {"user_id": ["1"]}}, ["Missing: ['movie_id']"]),
    "number for a string": (
        {"inputs": {"user_id": [196], "movie_id": ["242"]}},
        ["Input 'user_id' takes strings", "196", "user_id[0]"],
    ),
    "string for a bool": (
        {**_FEATURES, "inputs": {**NEW_USER, "user_gender": ["true"]}},
        ["Input 'user_gender' takes true or false", '"true"', "a JSON string"],
    ),
    "float beyond float32": (
        {**_FEATURES, "inputs": {**NEW_USER, "bucketized_user_age": [1e39]}},
        ["Input 'bucketized_user_age'", "float32 cannot represent"],
    ),
    "infinite feature": (
        {**_FEATURES, "inputs": {**NEW_USER, "bucketized_user_age": [float("inf")]}},
        ["input `bucketized_user_age` must not be inf or -inf", "[inf]"],
    ),
    "batch sizes differ": (
        {**_FEATURES, "inputs": {**NEW_USER, "movie_title": ["a", "b"]}},
        ["input `movie_title` has", "rows but `user_id` has"],
    ),
    "plain list, several inputs": ({"instances": ["1", "2"]}, ["one object per instance"]),
    "empty instances": ({"instances": []}, ["'instances' is an empty array"]),
    "both formats": ({"inputs": {}, "instances": []}, ["exactly one of 'instances'"]),
    "unknown signature": ({"signature_name": "nope", "inputs": {}}, ['"nope" not found']),
    "signature name not a string": (
        {"signature_name": ["x"], "inputs": {}},
        ["must be a JSON string"],
    ),
    "k true": ({**_RECOMMEND, "inputs": {"user_id": ["1"], "k": True}}, ["Input 'k'", "true"]),
    "k 2**40": (
        {**_RECOMMEND, "inputs": {"user_id": ["1"], "k": 2**40}},
        ["Input 'k'", "1099511627776", "wrap"],
    ),
    "k float": ({**_RECOMMEND, "inputs": {"user_id": ["1"], "k": 2.5}}, ["Input 'k'", "2.5"]),
    "k negative": (
        {**_RECOMMEND, "inputs": {"user_id": ["1"], "k": -1}},
        ["`k` must be >= 0", "-1"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_refused_bodies_get_tf_serving_error_responses_naming_the_input(served, case):
    body, expected = BAD_BODIES[case]
    message = _error(served, body)
    for part in expected:
        assert part in message, message
    assert "Traceback" not in message and "{{node" not in message


def test_k_never_wraps_around(served, exports, movielens):
    n = movielens.num_movies
    body = {**_RECOMMEND, "inputs": {"user_id": ["1"], "k": 2**31 - 1}}
    assert np.shape(served.rest(body)["outputs"]["movie_ids"]) == (1, n)
    # Numpy inputs to `run`: refused before the int32 cast that would wrap them.
    for k in (2**40, np.int64(2**32 + 2), True):
        with pytest.raises(ValueError, match="'k'"):
            served.run("recommend", {"user_id": ["1"], "k": k})
    recommend = load_recommender(exports.popular)
    assert recommend.catalogue_size == n
    for k in (2**32 + 2, np.int64(2**40), n + 1):  # clipped, not wrapped to 2 or 0
        assert recommend(["1"], k)[0].shape == (1, n)
    for k in (True, np.bool_(True), -1, 2.0, "3"):
        with pytest.raises(ValueError, match="`k` must be an integer >= 0"):
            recommend(["1"], k)


def test_recommend_lines_print_only_real_rows_and_say_when_k_is_clipped(exports, movielens):
    # The heavy user has 3 unseen movies: k=10 gives 3 rows, never blank ones.
    lines = recommend_lines(exports.popular, movielens.heavy_user, 10)
    assert lines[0] == f"Top 3 for user {movielens.heavy_user}:" and len(lines) == 4
    assert all(re.match(r"  \d\. \S.*\(movie \d+, score \d\.\d{3}\)$", line) for line in lines[1:])
    lines = recommend_lines(exports.popular, "1", 100_000)
    n = movielens.num_movies
    assert (
        lines[0] == f"k=100,000 is more than the {n} movies in the catalogue: showing at most {n}."
    )
    unseen = n - int(np.sum(movielens.seen[0] == "1"))
    assert lines[1] == f"Top {unseen} for user 1:" and len(lines) == unseen + 2
    assert all(line.strip() for line in lines)


def test_b64_binary_values_are_decoded(served):
    encoded = {"b64": base64.b64encode(b"196").decode()}
    got = served.rest({"instances": [{"user_id": encoded, "movie_id": "242"}]})
    plain = served.rest({"instances": [{"user_id": "196", "movie_id": "242"}]})
    assert got == plain


def test_grpc_requires_exact_dtypes_like_tf_serving(served):
    request = predict_request(
        "deepfm", "recommend", {"user_id": np.array([b"1"]), "k": np.int64(3)}
    )
    with pytest.raises(ValueError, match="'k' must be int32"):
        served.grpc(request)
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(3, dtype=tf.int32))
    request.output_filter.append("movie_ids")
    response = served.grpc(request)
    assert list(response.outputs) == ["movie_ids"]
    assert response.model_spec.signature_name == "recommend"
    assert tf.make_ndarray(response.outputs["movie_ids"]).shape == (1, 3)


def test_load_recommender_returns_decoded_top_k(exports, served):
    recommend = load_recommender(exports.base / "deepfm")  # model dir: latest version
    assert recommend.path == exports.popular
    ids, scores, titles = recommend([196, "new-user"], k=4)
    expected = served.rest(
        {"signature_name": "recommend", "inputs": {"user_id": ["196", "new-user"], "k": 4}}
    )
    assert ids.tolist() == expected["outputs"]["movie_ids"]
    assert titles.tolist() == expected["outputs"]["titles"]
    np.testing.assert_allclose(scores, expected["outputs"]["scores"], rtol=1e-6)
    assert scores.dtype == np.float32 and ids.dtype.kind == "U"
    with pytest.raises(ValueError, match="k=-1"):
        recommend(["1"], k=-1)

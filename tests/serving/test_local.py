"""LocalServing (TF Serving's Predict API in process) and load_recommender."""

import tfrec  # noqa: F401  # isort: skip
import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec.serving import load_recommender
from tfrec.serving.warmup import predict_request


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
    with pytest.raises(ValueError, match="Input 'k' must have shape"):
        served.rest({"signature_name": "recommend", "instances": [{"user_id": "1", "k": 3}]})


def test_json_values_are_checked_against_the_signature(served):
    with pytest.raises(ValueError, match=r"missing \['movie_id'\]"):
        served.rest({"inputs": {"user_id": ["1"]}})
    with pytest.raises(ValueError, match="expects strings"):
        served.rest({"inputs": {"user_id": [196], "movie_id": ["242"]}})
    with pytest.raises(ValueError, match="exactly one of 'instances'"):
        served.rest({"inputs": {}, "instances": []})
    with pytest.raises(ValueError, match="not found in signature def"):
        served.rest({"signature_name": "nope", "inputs": {}})


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

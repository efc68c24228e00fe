"""Every example of the README's "Serving with TF Serving" section runs against a real export.

JSON bodies go through `LocalServing.rest` (JSON -> tensors by the signature's dtypes, as TF
Serving does) and their documented responses must have the real layout; the Python blocks
run top to bottom (export, gRPC client with the channel routed to `LocalServing.grpc`,
`load_recommender`); the docker command and models.config must agree with the export.
"""

import tfrec  # noqa: F401  # isort: skip
import json
import re
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfrec.serving import ExportedRecommender, LocalServing

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```\s*$", re.S | re.M)


@pytest.fixture(scope="module")
def blocks():
    """``[(language, body, the paragraph before the block)]`` of the serving section."""
    text = README.read_text()
    section = text[text.index("<!-- serving:start -->") : text.index("<!-- serving:end -->")]
    found = []
    for match in _BLOCK.finditer(section):
        paragraphs = [p for p in section[: match.start()].split("\n\n") if p.strip()]
        found.append((match.group(1), match.group(2), paragraphs[-1] if paragraphs else ""))
    return found


def _layout(response):
    """Top-level key plus the shape of each output: what a documented response must match."""
    ((key, value),) = response.items()
    if isinstance(value, dict):
        return key, {name: np.shape(v) for name, v in value.items()}
    return key, np.shape(value)


def test_rest_bodies_run_and_documented_responses_match(blocks, served):
    covered = set()
    for index, (language, body, before) in enumerate(blocks):
        if language != "json":
            continue
        request = json.loads(body)
        signature = request.get("signature_name", "serving_default")
        layout = "row" if "instances" in request else "columnar"
        assert f"`{signature}`" in before and layout in before, (before, body)
        response = served.rest(request)
        following = blocks[index + 1] if index + 1 < len(blocks) else ("", "", "")
        if following[0] == "text" and following[1].lstrip().startswith("{"):
            assert _layout(json.loads(following[1])) == _layout(response), body
        covered.add((signature, layout))
    assert covered == {
        ("serving_default", "row"),
        ("serving_default", "columnar"),
        ("score_features", "row"),
        ("score_features", "columnar"),
        ("recommend", "columnar"),
        ("recommend_sequence", "columnar"),
    }


def test_the_documented_error_response_is_what_a_refused_body_gets(blocks, served):
    (documented,) = [json.loads(b) for lang, b, _ in blocks if b.startswith('{"error"')]
    body = {"signature_name": "recommend", "inputs": {"user_id": ["196"], "k": 2**40}}
    assert served.rest(body) == documented


class _RoutedStub:
    """PredictionServiceStub stand-in: answers from the export under ./saved_models/<name>."""

    calls = []
    servers = {}

    def __init__(self, channel):
        assert channel == ("insecure", "localhost:8500")

    def Predict(self, request, timeout=None):  # noqa: N802  (gRPC method name)
        base = Path("saved_models")
        assert f'name: "{request.model_spec.name}"' in (base / "models.config").read_text()
        self.calls.append(request.model_spec.signature_name)
        name = request.model_spec.name
        if name not in self.servers:
            self.servers[name] = LocalServing(base / name)
        return self.servers[name].grpc(request)


def test_python_examples_run_top_to_bottom(blocks, model, data, served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(grpc, "insecure_channel", lambda target: ("insecure", target))
    monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", _RoutedStub)
    _RoutedStub.calls, _RoutedStub.servers = [], {}
    namespace = {"model": model, "data": data}
    sources = [body for language, body, _ in blocks if language == "python"]
    assert len(sources) == 3
    after = []
    for source in sources:
        exec(compile(source, str(README), "exec"), namespace)  # noqa: S102
        after.append(dict(namespace))
    export, client, local = after

    assert export["version_dir"] == Path("saved_models/deepfm/1")
    assert _RoutedStub.calls == ["serving_default", "score_features", "recommend"]
    expected = served.rest({"inputs": {"user_id": ["196", "186"], "movie_id": ["242", "302"]}})
    np.testing.assert_allclose(client["scores"], expected["outputs"], rtol=1e-6)
    assert client["new_user_scores"].shape == (1,)
    assert client["top"]["movie_ids"].shape == (2, 3)
    assert local["movie_ids"].shape == local["titles"].shape == local["scores"].shape == (2, 10)
    assert isinstance(local["recommend"], ExportedRecommender)
    expected = served.rest(
        {"signature_name": "recommend", "inputs": {"user_id": ["196", "186"], "k": 10}}
    )["outputs"]
    assert local["movie_ids"].tolist() == expected["movie_ids"]  # the same export as `served`

    documented = [body for language, body, _ in blocks if body.startswith("model_config_list")]
    assert documented == [Path("saved_models/models.config").read_text()]


def test_docker_and_curl_commands_agree_with_the_export_layout(blocks):
    shell = "\n".join(body for language, body, _ in blocks if language == "bash")
    assert '-v "$PWD/saved_models:/models"' in shell
    assert "--model_config_file=/models/models.config" in shell
    assert "-p 8501:8501" in shell and "-p 8500:8500" in shell
    prose = README.read_text()
    assert "http://localhost:8501/v1/models/deepfm:predict" in prose

"""Use an export without a server: `tfrec recommend`, and TF Serving's Predict API in process.

No TF Serving binary can be installed everywhere (it is a Docker image or a Debian package),
yet requests should be checked before deployment. `LocalServing` loads an export with plain
`tf.saved_model.load` and answers the two Predict forms TF Serving accepts: REST JSON bodies
(row ``instances`` or columnar ``inputs``, converted to tensors by the signature's dtypes as
the server does) and gRPC `PredictRequest` protos. `load_recommender` is what
``tfrec recommend`` calls.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tfrec.serving.catalogue import as_strings
from tfrec.serving.export import latest_export


def _unwrap_b64(value):
    """Replaces TF Serving's ``{"b64": ...}`` binary values by bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {key: _unwrap_b64(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_b64(v) for v in value]
    return value


def _to_json(array: np.ndarray, name: str):
    if array.dtype.kind in "OS":
        if name.endswith("_bytes"):
            encode = np.vectorize(lambda v: {"b64": base64.b64encode(v).decode()}, otypes=[object])
            return encode(array).tolist() if array.size else array.tolist()
        return np.char.decode(array.astype(bytes), "utf-8").tolist()
    return array.tolist()


def _columnar_inputs(inputs, names: list) -> dict:
    """``inputs`` of a columnar body: a map by name, or the bare value of a single input."""
    if isinstance(inputs, dict):
        return inputs
    if len(names) != 1:
        raise ValueError(f"Columnar 'inputs' must be an object keyed by input name: {names}.")
    return {names[0]: inputs}


def _row_inputs(instances, names: list) -> dict:
    """Stacks row-format ``instances`` into one list per input name."""
    if not isinstance(instances, list):
        raise ValueError(f"'instances' must be a list. Received: {type(instances).__name__}")
    if not all(isinstance(row, dict) for row in instances):
        if len(names) != 1:
            raise ValueError(f"Row format with several inputs {names} needs one object per row.")
        return {names[0]: instances}
    missing = sorted({k for row in instances for k in set(names) - set(row)})
    if missing:
        raise ValueError(f"Every instance needs inputs {names}. Missing: {missing}")
    return {name: [row[name] for row in instances] for name in names}


class LocalServing:
    """Runs TF Serving Predict requests against an export, in this process.

    Exists so that request bodies (README examples, client code) are checked against the real
    signatures without a server: inputs are matched by name, converted and shape-checked the
    way TF Serving does, and responses have TF Serving's layout.

    Args:
      path: A version directory, or a model directory (its latest version is used).

    Example:
      >>> serving = LocalServing("saved_models/deepfm")
      >>> serving.rest({"instances": [{"user_id": "196", "movie_id": "242"}]})
      {'predictions': [0.41...]}
    """

    def __init__(self, path):
        self.path = latest_export(path)
        self._loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self._loaded.signatures)

    def input_specs(self, signature_name: str) -> dict:
        """``{input name: TensorSpec}`` of a signature."""
        if signature_name not in self.signatures:
            raise ValueError(
                f'Serving signature name: "{signature_name}" not found in signature def. '
                f"Available: {sorted(self.signatures)}"
            )
        return dict(self.signatures[signature_name].structured_input_signature[1])

    def run(self, signature_name: str, inputs: dict, cast: bool = True) -> dict:
        """Runs a signature on numpy-like inputs; returns ``{output name: np.ndarray}``.

        With ``cast=False`` (gRPC) the dtype must match exactly, as TF Serving requires.
        """
        specs = self.input_specs(signature_name)
        if set(inputs) != set(specs):
            raise ValueError(
                f"Signature '{signature_name}' takes inputs {sorted(specs)}. Received: "
                f"{sorted(inputs)} (missing {sorted(set(specs) - set(inputs))}, unexpected "
                f"{sorted(set(inputs) - set(specs))})"
            )
        feeds = {}
        for name, spec in specs.items():
            value = inputs[name]
            if cast and spec.dtype == tf.string:
                value = np.asarray(value, dtype=object)
                if value.size and not all(isinstance(v, str | bytes) for v in value.flat):
                    raise ValueError(f"Input '{name}' expects strings. Received: {value.tolist()}")
            tensor = tf.convert_to_tensor(value, dtype=spec.dtype if cast else None)
            if tensor.dtype != spec.dtype:
                raise ValueError(
                    f"Input '{name}' must be {spec.dtype.name}. Received: {tensor.dtype.name}"
                )
            if not spec.shape.is_compatible_with(tensor.shape):
                raise ValueError(
                    f"Input '{name}' must have shape {spec.shape} (None = any size). "
                    f"Received: shape {tensor.shape}"
                )
            feeds[name] = tensor
        outputs = self.signatures[signature_name](**feeds)
        return {name: value.numpy() for name, value in outputs.items()}

    def rest(self, body) -> dict:
        """Answers a REST ``:predict`` body (dict or JSON text) like TF Serving does."""
        if isinstance(body, str | bytes):
            body = json.loads(body)
        signature = body.get("signature_name", "serving_default")
        if ("instances" in body) == ("inputs" in body):
            raise ValueError(
                "A predict body needs exactly one of 'instances' (row format) and 'inputs' "
                f"(columnar format). Received keys: {sorted(body)}"
            )
        names = sorted(self.input_specs(signature))
        if "inputs" in body:
            key, inputs = "outputs", _columnar_inputs(_unwrap_b64(body["inputs"]), names)
        else:
            key, inputs = "predictions", _row_inputs(_unwrap_b64(body["instances"]), names)
        columns = {name: _to_json(v, name) for name, v in self.run(signature, inputs).items()}
        if len(columns) == 1:  # a single output loses its name in both formats
            return {key: next(iter(columns.values()))}
        if key == "outputs":
            return {key: columns}
        rows = zip(*columns.values(), strict=True)
        return {key: [dict(zip(columns, row, strict=True)) for row in rows]}

    def grpc(self, request):
        """Answers a gRPC `PredictRequest` with a `PredictResponse`, like TF Serving's Predict."""
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = self.run(signature, inputs, cast=False)
        if request.output_filter:
            outputs = {name: outputs[name] for name in request.output_filter}
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.signature_name = signature
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response


class ExportedRecommender:
    """Top-k movies per user through an export's ``recommend`` signature (`tfrec recommend`).

    Args:
      path: A version directory, or a model directory (its latest version is used).

    Example:
      >>> recommend = ExportedRecommender("saved_models/deepfm")
      >>> movie_ids, scores, titles = recommend(["196", "186"], k=5)
    """

    def __init__(self, path):
        self.path = latest_export(path)
        loaded = tf.saved_model.load(str(self.path))
        if "recommend" not in loaded.signatures:
            raise ValueError(
                f"The SavedModel at {self.path} has no 'recommend' signature (it has "
                f"{sorted(loaded.signatures)}). Fix: export it with tfrec.serving.export_model."
            )
        self._loaded = loaded
        self._recommend = loaded.signatures["recommend"]

    def __call__(self, user_ids, k: int = 10):
        """Returns ``(movie_ids, scores, titles)``, numpy ``[B, k']`` with k' = min(k, catalogue)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"`k` must be an integer >= 0. Received: k={k!r}")
        users = as_strings(np.atleast_1d(np.asarray(user_ids)), "user_ids")
        out = self._recommend(
            user_id=tf.constant(np.char.encode(users, "utf-8")), k=tf.constant(k, tf.int32)
        )
        ids = np.char.decode(out["movie_ids"].numpy().astype(bytes), "utf-8")
        titles = np.char.decode(out["titles"].numpy().astype(bytes), "utf-8")
        return ids, out["scores"].numpy(), titles


def load_recommender(path) -> ExportedRecommender:
    """The callable ``tfrec recommend`` uses: ``(user_ids, k) -> (movie_ids, scores, titles)``."""
    return ExportedRecommender(path)

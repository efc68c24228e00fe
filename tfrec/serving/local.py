"""Use an export without a server: `tfrec recommend`, and TF Serving's Predict API in process.

No TF Serving binary can be installed everywhere (it is a Docker image or a Debian package),
yet requests should be checked before deployment. `LocalServing` loads an export with plain
`tf.saved_model.load` and answers the two Predict forms TF Serving accepts: REST JSON bodies
(row ``instances`` or columnar ``inputs``, converted by the signature's dtypes with the
server's rules, and refused with its ``{"error": ...}`` response: `tfrec.serving.rest`) and
gRPC `PredictRequest` protos. `load_recommender` is what ``tfrec recommend`` calls.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tfrec.serving import rest
from tfrec.serving.catalogue import as_strings
from tfrec.serving.export import latest_export

INT32_MAX = 2**31 - 1


def _checked(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    """A numpy-like input as an array castable to `spec`'s dtype without loss or wrap-around.

    ``tf.convert_to_tensor(2**40, tf.int32)`` silently wraps (to 0) and ``True`` casts to 1:
    both are refused here, before any cast.
    """
    dtype = spec.dtype
    if dtype == tf.string:
        array = np.asarray(value, dtype=object)
        if array.size and not all(isinstance(v, str | bytes) for v in array.flat):
            raise ValueError(f"Input '{name}' expects strings. Received: {array.tolist()}")
        return array
    array = np.asarray(value)
    kind = array.dtype.kind
    if dtype.is_bool and kind == "b":
        return array
    if dtype.is_integer and kind in "iu":
        if array.size and (array.min() < dtype.min or array.max() > dtype.max):
            raise ValueError(
                f"Input '{name}' takes {dtype.name} values, from {dtype.min} to {dtype.max}. "
                f"Received: values from {array.min()} to {array.max()}, which would wrap around."
            )
        return array
    if dtype.is_floating and kind in "iuf":
        return array
    raise ValueError(
        f"Input '{name}' must be {dtype.name}. Received: {array.dtype.name} values "
        f"{np.array2string(array.ravel()[:5], separator=', ')}"
    )


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
            value = _checked(name, inputs[name], spec) if cast else inputs[name]
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
        """Answers a REST ``:predict`` body (dict or JSON text) like TF Serving does.

        A body TF Serving would refuse, or a request the graph rejects (e.g. ``k < 0``), is
        answered with ``{"error": "<message naming the input>"}``, as the server does, never
        by raising.
        """
        try:
            body = rest.parse_body(body)
            signature = rest.signature_name(body)
            key, inputs = rest.body_inputs(body, self.input_specs(signature))
            return rest.response(key, self.run(signature, inputs))
        except (ValueError, TypeError, RecursionError, tf.errors.OpError) as error:
            return rest.error_response(error)

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

    Attributes:
      catalogue_size: Number of items the export can recommend (larger k are clipped to it).

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
        ids = getattr(loaded, "catalogue_ids", None)
        self.catalogue_size = int(ids.shape[0]) if ids is not None else INT32_MAX

    def __call__(self, user_ids, k: int = 10):
        """Returns ``(movie_ids, scores, titles)``, numpy ``[B, k']`` with k' = min(k, catalogue).

        `k` must be an integer >= 0 (a bool is not); any larger than the catalogue is clipped
        to its size here, before the int32 cast that would wrap ``2**32 + 2`` around to 2.
        """
        if isinstance(k, bool | np.bool_) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"`k` must be an integer >= 0. Received: k={k!r}")
        k = min(int(k), self.catalogue_size, INT32_MAX)
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

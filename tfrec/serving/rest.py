"""TF Serving's REST Predict format: JSON bodies to typed arrays, outputs back to JSON, errors.

TF Serving converts each JSON value by the signature's dtype and refuses anything it cannot
convert exactly: a JSON ``true`` is not an int32, ``2**40`` does not fit one, a string input
takes only JSON strings or ``{"b64": "<base64>"}``, every row of an input must have the same
shape, and a row-format instance must name exactly the signature's inputs. It answers a body
it refuses with ``{"error": "<message>"}`` (HTTP 400) rather than failing. These functions
reproduce those rules for `tfrec.serving.LocalServing.rest`, with messages that name the input,
the value received and the fix, instead of "Incorrect padding" or an AttributeError.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

import numpy as np
import tensorflow as tf


class RequestError(ValueError):
    """A REST body TF Serving would refuse; the message names the input and the fix."""


def json_type(value) -> str:
    """The JSON type name of a decoded value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(value, limit: int = 80) -> str:
    """A JSON rendering of `value`, shortened for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_body(body) -> dict:
    """The body as a JSON object (dict); JSON text or bytes are parsed first."""
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as err:
            raise RequestError(
                f"The request body is not UTF-8 text (byte {bytes(body)[err.start]:#04x} at "
                f"offset {err.start}). Fix: send UTF-8 encoded JSON."
            ) from None
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise RequestError(
                f"JSON parse error: {err.msg} at offset {err.pos}. Fix: send a JSON object "
                'such as {"instances": [...]} or {"inputs": {...}}.'
            ) from None
    if not isinstance(body, dict):
        raise RequestError(
            f"The request body must be a JSON object. Received: {_show(body)} (a JSON "
            f'{json_type(body)}). Fix: send {{"instances": [...]}} or {{"inputs": {{...}}}}.'
        )
    return body


def signature_name(body: dict) -> str:
    """The body's ``signature_name`` (default ``serving_default``), checked to be a string."""
    name = body.get("signature_name", "serving_default")
    if not isinstance(name, str):
        raise RequestError(
            f"'signature_name' must be a JSON string. Received: {_show(name)} (a JSON "
            f"{json_type(name)})."
        )
    return name


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _shape(value) -> list[int]:
    """The dense shape a nested list implies, read along its first elements (as TF Serving)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _leaves(name: str, value, shape: list[int]) -> list:
    """The scalars of a nested list in row-major order; raises if it is ragged."""
    if not shape:
        return [value]
    if len(shape) == 1 and not any(isinstance(v, list) for v in value):
        return value
    out = []

    def walk(item, level, where):
        if isinstance(item, list) != (level < len(shape)) or (
            isinstance(item, list) and len(item) != shape[level]
        ):
            raise RequestError(
                f"Input '{name}' is ragged: {name}{where} is {_show(item, 40)}, but the first "
                f"rows have shape {shape[level:]} there. Fix: give every row the same shape "
                '(pad sequences, e.g. with "" for ids or -1 for genres).'
            )
        if level < len(shape):
            for i, child in enumerate(item):
                walk(child, level + 1, f"{where}[{i}]")
        else:
            out.append(item)

    walk(value, 0, "")
    return out


def _at(position) -> str:
    """``[i][j]`` of leaf number ``index`` in a nested list of shape ``shape`` (for messages)."""
    shape, index = position
    return "".join(f"[{j}]" for j in np.unravel_index(index, shape)) if shape else ""


def _string(name: str, value, dtype, position) -> bytes:
    """A JSON string (UTF-8 encoded) or ``{"b64": ...}`` (decoded) as bytes."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                f"Input '{name}' holds a string that is not valid Unicode (an unpaired "
                f"surrogate escape) at {name}{_at(position)}. Fix: send UTF-8 text, or bytes "
                'as {"b64": "<base64>"}.'
            ) from None
    if _is_b64(value):
        if not isinstance(value["b64"], str):
            raise RequestError(
                f"Input '{name}': {_show(value)} at {name}{_at(position)} is not formatted "
                'correctly for base64 data. Fix: {"b64": "<a base64 string>"}.'
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(
                f"Input '{name}': {_show(value)} at {name}{_at(position)} is not valid base64 "
                "(standard alphabet, '=' padding to a multiple of 4 characters). Fix: encode "
                "the bytes with base64.b64encode."
            ) from None
    raise RequestError(
        f"Input '{name}' takes strings (JSON strings or {{\"b64\": ...}}). Received: "
        f"{_show(value)} (a JSON {json_type(value)}) at {name}{_at(position)}."
    )


def _number(name: str, value, dtype: tf.DType, position):
    """A JSON boolean or number, checked to be exactly representable in `dtype`."""
    if dtype.is_bool:
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif dtype.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            if dtype.min <= value <= dtype.max:
                return value
            hint = " (k is clipped to the catalogue size anyway)" if name == "k" else ""
            raise RequestError(
                f"Input '{name}' takes {dtype.name} values, from {dtype.min} to {dtype.max}. "
                f"Received: {name}{_at(position)}={value}, which does not fit (it would wrap "
                f"around). Fix: send a value in range{hint}."
            )
        expected = f"{dtype.name} integers"
    else:
        if isinstance(value, int | float) and not isinstance(value, bool):
            limit = float(np.finfo(dtype.as_numpy_dtype).max)
            if (isinstance(value, float) and not np.isfinite(value)) or abs(value) <= limit:
                return value
            raise RequestError(
                f"Input '{name}' takes {dtype.name} values (|x| <= {limit:.4g}). Received: "
                f"{name}{_at(position)}={value}, which {dtype.name} cannot represent."
            )
        expected = f"{dtype.name} numbers"
    raise RequestError(
        f"Input '{name}' takes {expected}. Received: {_show(value)} (a JSON "
        f"{json_type(value)}) at {name}{_at(position)}."
    )


def json_array(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    """The JSON `value` of input `name` as an array of exactly the spec's dtype.

    Shapes are checked for raggedness here and against the spec by the caller.
    """
    dtype = spec.dtype
    shape = _shape(value)
    leaves = _leaves(name, value, shape)
    if dtype == tf.string:
        convert = _string
    elif dtype.is_bool or dtype.is_integer or dtype.is_floating:
        convert = _number
    else:
        raise RequestError(f"Input '{name}' has dtype {dtype.name}, which JSON cannot carry.")
    converted = [convert(name, v, dtype, (shape, i)) for i, v in enumerate(leaves)]
    if dtype == tf.string:
        array = np.empty(len(converted), dtype=object)
        array[:] = converted
    else:
        array = np.asarray(converted, dtype=dtype.as_numpy_dtype)
    return array.reshape(shape)


def _row_inputs(instances, names: list) -> dict:
    """Row format: one list per input, stacked from the ``instances``."""
    if not isinstance(instances, list):
        raise RequestError(
            f"'instances' must be a JSON array with one entry per example. Received: "
            f"{_show(instances)} (a JSON {json_type(instances)})."
        )
    if not instances:
        raise RequestError("'instances' is an empty array. Fix: send at least one instance.")
    named = [isinstance(row, dict) and not _is_b64(row) for row in instances]
    if not any(named):
        if len(names) != 1:
            raise RequestError(
                f"'instances' is a plain list, but the signature takes several inputs {names}. "
                'Fix: send one object per instance, e.g. {"instances": [{'
                + ", ".join(f'"{n}": ...' for n in names)
                + "}]}."
            )
        return {names[0]: instances}
    for index, (row, is_named) in enumerate(zip(instances, named, strict=True)):
        if not is_named:
            raise RequestError(
                f"instances[{index}] is {_show(row)} (a JSON {json_type(row)}), but "
                "instances[0] is an object. Fix: send one object per instance."
            )
        if set(row) != set(names):
            missing, unknown = sorted(set(names) - set(row)), sorted(set(row) - set(names))
            raise RequestError(
                f"instances[{index}] must have exactly the inputs {names}. Missing: {missing}; "
                f"unknown: {unknown}."
            )
    return {name: [row[name] for row in instances] for name in names}


def _columnar_inputs(inputs, names: list) -> dict:
    """Columnar format: an object keyed by input name (or the bare value of a single input)."""
    if isinstance(inputs, dict) and not _is_b64(inputs):
        missing, unknown = sorted(set(names) - set(inputs)), sorted(set(inputs) - set(names))
        if missing or unknown:
            raise RequestError(
                f"'inputs' must have exactly the signature's inputs {names}. Missing: "
                f"{missing}; unknown: {unknown}."
            )
        return dict(inputs)
    if len(names) != 1:
        raise RequestError(
            f"'inputs' is a plain value, but the signature takes several inputs {names}. Fix: "
            "send an object keyed by input name."
        )
    return {names[0]: inputs}


def body_inputs(body: dict, specs: dict) -> tuple[str, dict]:
    """``(response key, {input name: array})`` of a predict body, for input `specs`."""
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(
            "A predict body needs exactly one of 'instances' (row format) and 'inputs' "
            f"(columnar format). Received keys: {sorted(body)}"
        )
    names = sorted(specs)
    if "inputs" in body:
        key, values = "outputs", _columnar_inputs(body["inputs"], names)
    else:
        key, values = "predictions", _row_inputs(body["instances"], names)
    return key, {name: json_array(name, values[name], specs[name]) for name in names}


def _to_json(array: np.ndarray, name: str):
    if array.dtype.kind in "OS":
        if name.endswith("_bytes"):
            encode = np.vectorize(lambda v: {"b64": base64.b64encode(v).decode()}, otypes=[object])
            return encode(array).tolist() if array.size else array.tolist()
        return np.char.decode(array.astype(bytes), "utf-8").tolist()
    return array.tolist()


def response(key: str, outputs: dict) -> dict:
    """TF Serving's response layout for ``{output name: array}``."""
    columns = {name: _to_json(value, name) for name, value in outputs.items()}
    if len(columns) == 1:  # a single output loses its name in both formats
        return {key: next(iter(columns.values()))}
    if key == "outputs":
        return {key: columns}
    rows = zip(*columns.values(), strict=True)
    return {key: [dict(zip(columns, row, strict=True)) for row in rows]}


_NODE = re.compile(r"\s*(\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\])")


def error_response(error: BaseException) -> dict:
    """``{"error": message}``; graph errors keep their assertion text, without node traces."""
    if isinstance(error, tf.errors.OpError):
        text = _NODE.sub("", error.message)
        trace = ("Graph execution error", "Detected at node", "<stack", " ", "\t")
        kept = [line for line in text.splitlines() if line and not line.startswith(trace)]
        message = " ".join(" ".join(kept).split()) or error.message
    elif isinstance(error, RecursionError):
        message = "The request body is nested too deeply."
    else:
        message = str(error)
    return {"error": message}

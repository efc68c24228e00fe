"""TF Serving warmup records: one real request per signature, replayed when a version loads.

TF Serving runs the PredictionLogs in ``assets.extra/tf_serving_warmup_requests`` before it
marks a model version available, so the first client request does not pay for graph
initialisation and lazily built hash tables. Each record here is a small, valid
`PredictRequest` for one signature, built from the exported catalogue and store.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def predict_request(model_name: str, signature_name: str, inputs: dict):
    """A `PredictRequest` for `signature_name` with numpy `inputs` as TensorProtos."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def warmup_logs(example_inputs: dict, model_name: str) -> list:
    """One `PredictionLog` per signature from ``{signature: {input: array}}``."""
    logs = []
    for signature, inputs in example_inputs.items():
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.CopyFrom(predict_request(model_name, signature, inputs))
        logs.append(log)
    return logs


def write_warmup(export_dir, logs) -> pathlib.Path:
    """Writes `logs` as a TFRecord file where TF Serving looks for warmup requests."""
    directory = pathlib.Path(export_dir) / WARMUP_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WARMUP_FILE
    partial = directory / f".{WARMUP_FILE}.partial"
    with tf.io.TFRecordWriter(str(partial)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    os.replace(partial, path)
    return path


def read_warmup(export_dir) -> list:
    """The `PredictionLog` records of an export (to inspect or replay them)."""
    path = pathlib.Path(export_dir) / WARMUP_DIR / WARMUP_FILE
    if not path.exists():
        raise FileNotFoundError(f"No warmup requests at {path}. Fix: export with warmup=True.")
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs

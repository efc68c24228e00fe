"""Warmup records: one PredictionLog per signature, each a request the export answers."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfrec.serving import SIGNATURES, read_warmup
from tfrec.serving.warmup import WARMUP_DIR, WARMUP_FILE


def test_warmup_file_is_where_tf_serving_looks(exports):
    assert (exports.popular / WARMUP_DIR / WARMUP_FILE).is_file()
    assert WARMUP_DIR == "assets.extra" and WARMUP_FILE == "tf_serving_warmup_requests"


def test_warmup_records_parse_as_prediction_logs_and_run(exports, served):
    raw = tf.data.TFRecordDataset(str(exports.popular / WARMUP_DIR / WARMUP_FILE))
    logs = []
    for record in raw.as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.WhichOneof("log_type") == "predict_log"
        logs.append(log)
    names = [log.predict_log.request.model_spec.signature_name for log in logs]
    # One per signature: SIGNATURES plus recommend_sequence (the model reads histories).
    assert sorted(names) == sorted(served.signatures) == sorted([*SIGNATURES, "recommend_sequence"])
    assert [log.SerializeToString() for log in read_warmup(exports.popular)] == [
        log.SerializeToString() for log in logs
    ]
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "deepfm"
        response = served.grpc(request)
        first = "user_id" if "user_id" in request.inputs else "movie_ids"
        batch = tf.make_ndarray(request.inputs[first]).shape[0]
        for name, proto in response.outputs.items():
            assert tf.make_ndarray(proto).shape[0] == batch, name
    k = tf.make_ndarray(logs[names.index("recommend")].predict_log.request.inputs["k"])
    assert k.dtype == np.int32 and k.shape == () and k == 10

"""`signature_function`: traced once for an export, callable from Python, not a saved attribute."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import tensorflow as tf

from tfrec._signatures import signature_function


def make_module(decorator):
    class Scaler(tf.Module):
        traces = 0

        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(3.0)

        @decorator
        def serve(self, x):
            type(self).traces += 1  # runs once per trace, never per call
            return {"y": self.scale * x}

    return Scaler()


def save(module, path):
    spec = tf.TensorSpec([None], tf.float32, name="x")
    signature = module.serve.get_concrete_function(spec)
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})


def test_saving_reuses_the_signature_trace_which_plain_tf_function_does_not(tmp_path):
    plain = make_module(tf.function)
    save(plain, tmp_path / "plain")
    assert plain.traces == 2  # the save context is part of tf.function's trace cache key

    module = make_module(signature_function)
    save(module, tmp_path / "once")
    assert module.traces == 1

    loaded = tf.saved_model.load(str(tmp_path / "once"))
    out = loaded.signatures["serving_default"](x=tf.constant([1.0, 2.0]))["y"]
    np.testing.assert_allclose(out.numpy(), [3.0, 6.0])
    assert hasattr(tf.saved_model.load(str(tmp_path / "plain")), "serve")
    assert not hasattr(loaded, "serve")  # served through its signature only


def test_python_calls_share_one_function_per_instance():
    first, second = make_module(signature_function), make_module(signature_function)
    second.scale.assign(5.0)
    x = tf.constant([2.0])
    assert first.serve(x)["y"].numpy().tolist() == [6.0]
    assert first.serve(tf.constant([4.0]))["y"].numpy().tolist() == [12.0]
    assert second.serve(x)["y"].numpy().tolist() == [10.0]
    assert first.serve is first.serve and first.serve is not second.serve
    assert type(first).traces == type(second).traces == 1  # the second call reused the trace
    assert first.serve.__doc__ == type(first).serve.__doc__

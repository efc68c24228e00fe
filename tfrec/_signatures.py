"""`signature_function`: `tf.function` for the methods an export serves, traced once per export.

`tf.saved_model.save` saves every `tf.function` it finds as an attribute of a module, so that
the loaded object can call it, and it retraces each one to do so: saving runs inside a save
context that is part of `tf.function`'s trace cache key, so the traces made for the signatures
are not reused. For an exported recommender that second trace of the whole model was a third
to a half of the export's time (`benchmarks/bench_export.py`: twelve models 30-35 s -> 19-20
s). Exports are used through their signatures (TF Serving knows nothing else), so a method
decorated with `signature_function` is a `tf.function` for Python callers and for
`get_concrete_function`, but is not an attribute the SavedModel saves: the module's signatures
are traced once, outside `tf.saved_model.save`.
"""

from __future__ import annotations

import functools

import tensorflow as tf


class _Bound:
    """A module's own `tf.function` of one method, in a wrapper `tf.saved_model.save` skips
    (it looks only for `tf.function` and concrete-function attributes)."""

    def __init__(self, function):
        self._function = function
        functools.update_wrapper(self, function.python_function)

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    def get_concrete_function(self, *args, **kwargs):
        return self._function.get_concrete_function(*args, **kwargs)


class signature_function:  # noqa: N801  (used as a decorator, like tf.function)
    """Decorates a `tf.Module` method: a `tf.function` per instance that is not saved as an
    attribute (see the module docstring). Pass its concrete functions as signatures.

    Example:

    >>> class Doubler(tf.Module):
    ...     @signature_function
    ...     def serve(self, x):
    ...         return {"y": 2 * x}
    >>> module = Doubler()
    >>> signature = module.serve.get_concrete_function(tf.TensorSpec([None], tf.float32))
    >>> tf.saved_model.save(module, path, signatures={"serving_default": signature})
    """

    def __init__(self, method):
        self._method = method
        functools.update_wrapper(self, method)

    def __set_name__(self, owner, name):
        self._name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        bound = _Bound(tf.function(self._method.__get__(instance, owner)))
        # Cached in the instance's __dict__, which takes precedence over this (non-data)
        # descriptor from now on: one function, and one set of traces, per module.
        instance.__dict__[self._name] = bound
        return bound

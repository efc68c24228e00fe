"""Shared pytest fixtures for the tfrec test suite.

Importing tfrec here, before any test module, guarantees Keras 2 is selected whatever order
pytest collects the tests in.

`make test` runs the suite on pytest-xdist workers with ``--dist loadscope``; the hook below
keeps each test module on one worker (its module and session fixtures, such as every model
trained once in tests/models/test_all_models.py, are built once), except that each notebook is
a group of its own: the notebooks are the longest tests and run side by side.
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before tf.keras is touched)
import numpy as np
import pytest
import tensorflow as tf

NOTEBOOK_RUNS = "tests/test_notebooks.py::test_notebook_runs["


LONGEST_FIRST = ("tests/models/test_all_models.py::", NOTEBOOK_RUNS)
"""The longest work units, collected first so that xdist hands them out before the short ones
(last, they would leave one worker running alone at the end)."""


def pytest_collection_modifyitems(config, items):
    """Moves `LONGEST_FIRST` to the front, each module's tests kept in their order."""
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadscope``: one work unit per test module, except that each notebook run
    is a unit of its own (see the module docstring). xdist's hook; None keeps its default."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndNotebooks(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return nodeid if nodeid.startswith(NOTEBOOK_RUNS) else nodeid.split("::", 1)[0]

    return ModulesAndNotebooks(config, log)


def _by_name(model, outputs) -> dict:
    """Names a model's outputs as its serving signature does (dict keys or output names)."""
    if isinstance(outputs, dict):
        return {k: np.asarray(v, np.float64) for k, v in outputs.items()}
    values = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
    names = getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(values))]
    return {n: np.asarray(v, np.float64) for n, v in zip(names, values, strict=True)}


def _assert_same(got: dict, expected: dict, where: str, atol: float, rtol: float) -> None:
    if len(got) == len(expected) == 1:  # a lone output's serving name is not worth matching
        got, expected = list(got.values()), list(expected.values())
    else:
        assert set(got) == set(expected), f"{where} outputs {sorted(got)} != {sorted(expected)}"
        got, expected = [got[k] for k in sorted(got)], [expected[k] for k in sorted(got)]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(
            np.asarray(g, np.float64), e, atol=atol, rtol=rtol, err_msg=where
        )


def _named_inputs(model, inputs) -> dict:
    """Maps ``inputs`` (dict, list or single array) to the model's input names."""
    if isinstance(inputs, dict):
        return dict(inputs)
    values = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    names = model.input_names
    assert len(names) == len(values), f"model has inputs {names}, got {len(values)} arrays"
    return dict(zip(names, values, strict=True))


@pytest.fixture
def savedmodel_roundtrip(tmp_path):
    """Returns ``check(model, inputs, atol=1e-5, rtol=1e-5)`` for SavedModel round trips.

    ``check`` saves ``model`` in SavedModel format under ``tmp_path``, reloads it twice and
    asserts that both reloads reproduce ``model(inputs, training=False)``:

    * ``tf.keras.models.load_model`` without custom_objects (layer registration must suffice);
    * plain ``tf.saved_model.load`` through the ``serving_default`` signature (what TF Serving
      runs), fed by input name.

    ``inputs`` is a dict keyed by input name, a list in ``model.inputs`` order, or one array.
    Returns the Keras-reloaded model for further checks.
    """
    counter = iter(range(1_000_000))

    def check(model, inputs, atol: float = 1e-5, rtol: float = 1e-5):
        named = _named_inputs(model, inputs)
        keras_inputs = inputs if not isinstance(inputs, dict) else named
        expected = _by_name(model, model(keras_inputs, training=False))
        path = tmp_path / f"savedmodel_{next(counter)}"
        model.save(path, save_format="tf")

        reloaded = tf.keras.models.load_model(path)
        # Keras silently "revives" unregistered classes as generic ones: insist on the classes.
        assert type(reloaded) is type(model), f"model reloaded as {type(reloaded)}"
        for layer in model.layers:
            revived = type(reloaded.get_layer(layer.name))
            assert revived is type(layer), f"{layer.name}: reloaded as {revived}, not registered?"
        got = _by_name(model, reloaded(keras_inputs, training=False))
        _assert_same(got, expected, "load_model", atol, rtol)

        serving = tf.saved_model.load(str(path)).signatures["serving_default"]
        specs = serving.structured_input_signature[1]
        assert set(specs) == set(named), f"signature inputs {sorted(specs)} != {sorted(named)}"
        feeds = {k: tf.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in named.items()}
        _assert_same(serving(**feeds), expected, "serving_default", atol, rtol)
        return reloaded

    return check


@pytest.fixture
def config_roundtrip():
    """Returns ``check(layer, *call_args, **call_kwargs)`` for get_config/from_config.

    ``check`` calls ``layer`` (building it), rebuilds it with ``from_config`` and with Keras'
    generic ``tf.keras.layers.deserialize`` (which needs the layer's registration), asserts the
    config survives unchanged, copies the weights and asserts identical outputs. Returns the
    clone.
    """

    def check(layer, *call_args, **call_kwargs):
        expected = np.asarray(layer(*call_args, **call_kwargs), np.float64)
        config = layer.get_config()
        serialized = tf.keras.layers.serialize(layer)
        for clone in (type(layer).from_config(config), tf.keras.layers.deserialize(serialized)):
            assert type(clone) is type(layer)
            assert clone.get_config() == config
            clone(*call_args, **call_kwargs)  # builds the weights
            clone.set_weights(layer.get_weights())
            got = np.asarray(clone(*call_args, **call_kwargs), np.float64)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        return clone

    return check


@pytest.fixture(scope="session")
def tiny_movielens():
    """A small synthetic MovieLens (100k schema) with a learnable taste signal."""
    from tfrec.data.synthetic import synthetic_movielens

    return synthetic_movielens(num_users=60, num_movies=80, ratings_per_user=12, seed=1)


@pytest.fixture(scope="session")
def tiny_data(tiny_movielens):
    """`SplitData` (leave-one-out) on `tiny_movielens`."""
    from tfrec.data import SplitData

    return SplitData.from_movielens(tiny_movielens)


def cyclic_movielens(num_users=60, num_movies=60, length=12, seed=0):
    """A MovieLens (100k schema) whose users all watch movies in one fixed cyclic order.

    User u starts at a random movie s_u and watches s_u, s_u + 1, ..., s_u + length - 1 (mod
    num_movies), so the next movie is always the one after the newest: a sequential signal a
    sequence model learns in a few steps while a random model hits it 10 / (unseen) of the time.
    """
    from tfrec.data.movielens import from_tables
    from tfrec.data.parsers import Tables
    from tfrec.data.synthetic import synthetic_tables

    tables = synthetic_tables(num_users=num_users, num_movies=num_movies, ratings_per_user=3,
                              seed=seed)  # fmt: skip
    rng = np.random.default_rng(seed)
    step = np.arange(length)
    movies = (rng.integers(0, num_movies, num_users)[:, None] + step) % num_movies
    users = np.repeat(np.arange(num_users), length)
    ratings = {
        "user_id": (users + 1).astype(str),
        "movie_id": tables.movies["movie_id"][movies.ravel()],
        "user_rating": np.full(users.size, 4.0, np.float32),
        "timestamp": 880_000_000 + users * 100_000 + np.tile(step, num_users) * 60,
    }
    shuffle = rng.permutation(users.size)  # file order must not matter
    ratings = {k: v[shuffle] for k, v in ratings.items()}
    return from_tables(Tables(ratings, tables.movies, tables.users), "100k", "synthetic")


@pytest.fixture(scope="session")
def cyclic_split():
    """Returns ``make(**kwargs)``: `SplitData` (leave-one-out) of `cyclic_movielens(**kwargs)`."""
    from tfrec.data import SplitData

    def make(**kwargs):
        return SplitData.from_movielens(cyclic_movielens(**kwargs))

    return make


@pytest.fixture(scope="session")
def cyclic_data(cyclic_split):
    """`cyclic_movielens` as `SplitData`: 60 users x 12 movies of 60."""
    return cyclic_split()


@pytest.fixture(scope="session")
def fitted_sasrec(cyclic_data):
    """A small SASRec fit for 2 epochs on `cyclic_data`, shared by the model, serving and
    two-stage pipeline tests: ``.model``, ``.history`` (Keras logs) and ``.settings`` (its
    registry settings, to build an untrained twin)."""
    import types

    from tfrec.models import build_model
    from tfrec.training import fit

    settings = {"embedding_dim": 16, "history_length": 8, "num_blocks": 1, "num_heads": 1,
                "dropout": 0.1}  # fmt: skip
    model = build_model("sasrec", cyclic_data, **settings)
    history = fit(model, cyclic_data, epochs=2, batch_size=16, learning_rate=1e-2, verbose=0)
    return types.SimpleNamespace(model=model, history=history.history, settings=settings)


SMALL_HPARAMS = {
    "embedding_dim": 4,
    "history_length": 5,
    "dnn_units": [8],
    "mlp_units": [8],
    "mlp_embedding_dim": 4,
    "units": [8],
    "cross_layers": 1,
}
"""Tiny hyperparameters; each model takes the ones it has (`small`)."""


@pytest.fixture(scope="session")
def small():
    """Returns ``small(name)``: the `SMALL_HPARAMS` model `name` accepts, for fast builds."""
    from tfrec.models import model_defaults

    def hparams(name: str) -> dict:
        return {k: v for k, v in SMALL_HPARAMS.items() if k in model_defaults(name)}

    return hparams

"""Towers: field shapes, the pooled vector, preprocessing once vs per example, round trips."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features import Categorical, MultiCategorical, Numeric
from tfrec.towers import Tower, build_tower, movielens_movie_columns, movielens_user_columns


@pytest.fixture(scope="module")
def table():
    return {
        "user_id": np.array(["1", "2", "3", "1"]),
        "user_gender": np.array([True, False, True, True]),
        "recent_movie_ids": np.array([["5", ""], ["6", "5"], ["", ""], ["7", "5"]]),
        "raw_user_age": np.array([20.0, 30.0, 40.0, 20.0], np.float32),
    }


def _tower(table):
    columns = [
        Categorical("user_id"),
        Categorical("user_gender"),
        MultiCategorical("recent_movie_ids"),
        Numeric("raw_user_age", num_buckets=2),
        Categorical("absent_in_this_variant"),
    ]
    return build_tower(table, columns, embedding_dim=4, name="user_tower")


def test_tower_outputs_fields_weights_and_pooled_sum(table):
    tower = _tower(table)
    assert tower.field_names == ["user_id", "user_gender", "recent_movie_ids", "raw_user_age"]
    out = tower({k: tf.constant(v) for k, v in table.items()})
    assert out["embeddings"].shape == (4, 4, 4)
    assert out["weights"].shape == (4, 4)
    np.testing.assert_allclose(
        out["pooled"].numpy(), out["embeddings"].numpy().sum(axis=1), rtol=1e-6
    )


def test_preprocessed_inputs_give_identical_outputs(table):
    tower = _tower(table)
    raw = {k: tf.constant(v) for k, v in table.items()}
    pre = tower.preprocess(raw)
    assert set(pre) == {f"user_tower/{n}" for n in tower.field_names}
    np.testing.assert_allclose(tower(pre)["embeddings"].numpy(), tower(raw)["embeddings"].numpy())


def test_tower_validation():
    with pytest.raises(ValueError, match="at least one"):
        Tower([])
    with pytest.raises(ValueError, match="None of the columns"):
        build_tower({"x": np.array([1])}, [Categorical("user_id")])


def test_movielens_default_columns_cover_the_schema(tiny_data):
    table = tiny_data.example_table()
    user = build_tower(table, movielens_user_columns(), 8, name="u")
    movie = build_tower(table, movielens_movie_columns(), 8, name="m")
    assert "recent_movie_ids" in user.field_names
    assert movie.field_names == ["movie_id", "movie_genres", "movie_title", "movie_title_year"]


def test_tower_config_and_savedmodel_round_trip(table, tmp_path):
    tower = _tower(table)
    inputs = {
        k: tf.keras.Input(
            shape=v.shape[1:],
            dtype=tf.as_dtype(v.dtype) if v.dtype.kind not in "U" else tf.string,
            name=k,
        )
        for k, v in table.items()
    }
    model = tf.keras.Model(inputs, tower(inputs)["pooled"])
    data = {k: tf.constant(v) for k, v in table.items()}
    expected = model(data).numpy()
    clone = Tower.from_config(tower.get_config())
    clone(data)
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(data)["pooled"].numpy(), expected, rtol=1e-6)
    model.save(tmp_path / "tower")
    reloaded = tf.keras.models.load_model(tmp_path / "tower")
    assert type(reloaded.layers[-1]) is Tower or any(
        type(layer) is Tower for layer in reloaded.layers
    )
    np.testing.assert_allclose(reloaded(data).numpy(), expected, rtol=1e-6)
    serving = tf.saved_model.load(str(tmp_path / "tower")).signatures["serving_default"]
    out = list(serving(**data).values())[0].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)

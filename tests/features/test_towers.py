"""Towers: fields, the pooled vector, sequences, ties, preprocessing, round trips, scale towers."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData, scale
from tfrec.data.synthetic import synthetic_movielens
from tfrec.features import (
    RECENT_MOVIES,
    Categorical,
    CategoricalEncoder,
    ItemSequence,
    MultiCategorical,
    Numeric,
    NumericEncoder,
    SequenceEncoder,
    Tower,
    build_tower,
    movielens_movie_columns,
    movielens_user_columns,
    scale_towers,
)
from tfrec.features.inputs import example_table


@pytest.fixture(scope="module")
def table():
    return {
        "user_id": np.array(["1", "2", "3", "1"]),
        "user_gender": np.array([True, False, True, True]),
        "recent_movie_ids": np.array([["", "5"], ["6", "5"], ["", ""], ["7", "5"]]),
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


def _movie_tower(dim=4):
    movie = CategoricalEncoder("movie_id", ["5", "6", "7"], dim, name="movie_id")
    return Tower([movie], name="movie_tower")


def _sequence_tower(table, dim=4, shared="movie_id"):
    columns = [Categorical("user_id"), ItemSequence("recent_movie_ids", 3, shared)]
    return build_tower(table, columns, embedding_dim=dim, name="user_tower")


def test_tower_outputs_fields_weights_and_pooled_sum(table):
    tower = _tower(table)
    assert tower.field_names == ["user_id", "user_gender", "recent_movie_ids", "raw_user_age"]
    assert tower.fields == tower.encoders and tower.sequence is None
    assert tower.feature_keys == sorted(table)
    out = tower({k: tf.constant(v) for k, v in table.items()})
    assert set(out) == {"embeddings", "weights", "pooled"}
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


def test_sequence_is_not_a_field_and_is_output_in_order(table):
    tower = _sequence_tower(table, shared=None)
    assert tower.field_names == ["user_id"]
    assert isinstance(tower.sequence, SequenceEncoder)
    assert tower.encoder("recent_movie_ids") is tower.sequence
    raw = {k: tf.constant(v) for k, v in table.items()}
    out = tower(raw)
    assert set(out) == {"embeddings", "weights", "pooled", "sequence", "sequence_mask"}
    assert out["embeddings"].shape == (4, 1, 4) and out["sequence"].shape == (4, 3, 4)
    np.testing.assert_array_equal(
        out["sequence_mask"],
        [[False, False, True], [False, True, True], [False, False, False], [False, True, True]],
    )
    np.testing.assert_allclose(out["pooled"], out["embeddings"][:, 0])  # the sequence is apart
    table_ = tower.sequence.embedding.embeddings.numpy()
    ids = tower.sequence.lookup(tf.constant(["6", "5"])).numpy()
    np.testing.assert_allclose(out["sequence"][1, 1:], table_[ids], rtol=1e-6)
    pre = tower.preprocess(raw)
    assert set(pre) == {"user_tower/user_id", "user_tower/recent_movie_ids"}
    np.testing.assert_allclose(tower(pre)["sequence"], out["sequence"])


def test_only_a_sequence(table):
    tower = build_tower(table, [ItemSequence("recent_movie_ids", 2, None)], 4, name="q")
    out = tower({"recent_movie_ids": tf.constant(table["recent_movie_ids"])})
    assert set(out) == {"sequence", "sequence_mask"} and tower.fields == []


def test_tie_shares_the_item_table(table):
    tower, movies = _sequence_tower(table), _movie_tower()
    with pytest.raises(ValueError, match="never tied"):
        tower({k: tf.constant(v) for k, v in table.items()})
    tower.tie(movies)
    out = tower({k: tf.constant(v) for k, v in table.items()})
    item = movies.encoder("movie_id")
    assert tower.sequence.embedding is item.embedding and tower.sequence.lookup is item.lookup
    vectors = movies({"movie_id": tf.constant(["6", "5"])})["embeddings"][:, 0]
    np.testing.assert_allclose(out["sequence"][1, 1:], vectors, rtol=1e-6)
    _tower(table).tie(movies)  # no sequence: nothing to tie
    with pytest.raises(KeyError, match="has no encoder 'movie_id'. Has:"):
        _sequence_tower(table).tie(_tower(table))


def test_tower_validation(table):
    with pytest.raises(ValueError, match=r"at least one encoder. Received: encoders=\[\]"):
        Tower([])
    with pytest.raises(ValueError, match="None of the columns"):
        build_tower({"x": np.array([1])}, [Categorical("user_id")])
    a = CategoricalEncoder("a", ["x"], 4, name="a")
    with pytest.raises(ValueError, match=r"share embedding_dim. Received: \[2, 4\]"):
        Tower([a, CategoricalEncoder("b", ["x"], 2, name="b")])
    with pytest.raises(ValueError, match="names must be unique"):
        Tower([a, CategoricalEncoder("b", ["x"], 4, name="a")])
    sequences = [SequenceEncoder(k, 2, 4, vocabulary=["x"], name=k) for k in ("s", "t")]
    with pytest.raises(ValueError, match=r"at most one sequence. Received: \['s', 't'\]"):
        Tower([a, *sequences])
    with pytest.raises(KeyError, match="has no encoder 'nope'"):
        _tower(table).encoder("nope")


def test_movielens_default_columns_cover_the_schema():
    ml = synthetic_movielens(num_users=20, num_movies=30, ratings_per_user=6, seed=0)
    table = example_table(SplitData.from_movielens(ml), history_length=3)
    user = build_tower(table, movielens_user_columns(), 8, name="u")
    movie = build_tower(table, movielens_movie_columns(), 8, name="m")
    assert user.field_names == [
        "user_id",
        "user_gender",
        "bucketized_user_age",
        "user_occupation_text",
        "user_zip_code_prefix2",
        RECENT_MOVIES,
    ]
    assert RECENT_MOVIES not in build_tower(table, movielens_user_columns(False), 8).field_names
    assert movie.field_names == ["movie_id", "movie_genres", "movie_title", "movie_title_year"]


def test_scale_towers_split_columns_by_side():
    schema = scale.make_schema(
        "movielens", rows=1024, ids=300, items=50, chunk_rows=1024, block_rows=512
    )
    query, candidate, rename = scale_towers(schema, embedding_dim=4)
    columns = {n: c for n, c in schema["columns"].items() if c["side"] != "label"}
    assert query.name == "user_tower" and candidate.name == "item_tower"
    assert query.field_names == [n for n, c in columns.items() if c["side"] == "user"]
    assert candidate.field_names == [n for n, c in columns.items() if c["side"] == "item"]
    assert rename == {
        n: f"{'user_tower' if c['side'] == 'user' else 'item_tower'}/{n}"
        for n, c in columns.items()
    }
    for tower in (query, candidate):
        for encoder in tower.encoders:
            size = columns[encoder.name]["vocabulary"]
            expected = CategoricalEncoder if size else NumericEncoder
            assert type(encoder) is expected and encoder.embedding_dim == 4
            if size:
                assert encoder.hash_bins == size
    batch = next(iter(scale.generate(schema)))
    features = {rename[n]: tf.constant(batch[n][:5]) for n in columns if n in query.field_names}
    assert query(features)["embeddings"].shape == (5, len(query.field_names), 4)


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
    assert clone.get_config() == tower.get_config()
    np.testing.assert_allclose(clone(data)["pooled"].numpy(), expected, rtol=1e-6)
    model.save(tmp_path / "tower")
    reloaded = tf.keras.models.load_model(tmp_path / "tower")
    assert any(type(layer) is Tower for layer in reloaded.layers)
    np.testing.assert_allclose(reloaded(data).numpy(), expected, rtol=1e-6)
    serving = tf.saved_model.load(str(tmp_path / "tower")).signatures["serving_default"]
    out = list(serving(**data).values())[0].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_sequence_tower_config_round_trip(table):
    tower = _sequence_tower(table, shared=None)
    data = {k: tf.constant(v) for k, v in table.items()}
    expected = tower(data)
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(tower))
    assert type(clone) is Tower and type(clone.sequence) is SequenceEncoder
    clone(data)
    clone.set_weights(tower.get_weights())
    got = clone(data)
    for key in ("pooled", "sequence", "sequence_mask"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)

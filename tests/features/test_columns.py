"""Columns adapt vocabularies and statistics from a training table."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.features import (
    Categorical,
    ItemSequence,
    MultiCategorical,
    Numeric,
    SequenceEncoder,
    Text,
    column_from_config,
)
from tfrec.features.columns import frequency_vocabulary


def test_frequency_vocabulary_orders_caps_and_filters():
    values = np.array(["b", "a", "b", "c", "a", "b", "", "d"])
    assert frequency_vocabulary(values) == ["b", "a", "c", "d"]
    assert frequency_vocabulary(values, max_tokens=2) == ["b", "a"]
    assert frequency_vocabulary(values, min_count=2) == ["b", "a"]


def test_frequency_vocabulary_takes_tensors_bytes_and_matrices_alike():
    """Counts are TensorFlow's unique (hash) counts; ties go by value, UTF-8 round-trips."""
    matrix = np.array([["é", "z", "-1"], ["z", "é", "a"], ["-1", "-1", "z"]])
    expected = ["z", "é", "a"]  # z 3, é 2, a 1; "-1" excluded however often it appears
    for strings in (matrix, np.char.encode(matrix, "utf-8"), tf.constant(matrix)):
        assert frequency_vocabulary(strings, exclude=("-1",)) == expected
        assert frequency_vocabulary(strings, exclude=(b"-1",)) == expected
    assert frequency_vocabulary(np.array(["", ""])) == []


def test_categorical_builds_encoder_with_adapted_vocabulary():
    table = {"user_zip_code": np.array(["12345", "12999", "55555"])}
    enc = Categorical("user_zip_code", prefix_length=2).build(table, 4)
    assert enc.vocabulary == ["12", "55"]
    assert enc.name == "user_zip_code_prefix2"


def test_multi_valued_and_text_columns_skip_padding():
    table = {
        "movie_genres": np.array([[3, -1], [3, 7]]),
        "movie_title": np.array(["Toy Story (1995)", "Toy Soldiers (1991)"]),
    }
    genres = MultiCategorical("movie_genres", padding="-1").build(table, 2)
    assert genres.vocabulary == ["3", "7"]
    words = Text("movie_title").build(table, 2)
    assert words.vocabulary == ["toy", "soldiers", "story"]


def test_numeric_quantile_buckets_and_statistics():
    table = {"x": np.arange(100, dtype=np.float32)}
    enc = Numeric("x", num_buckets=4).build(table, 2)
    np.testing.assert_allclose(enc.boundaries, [24.75, 49.5, 74.25])
    plain = Numeric("x").build(table, 2)
    assert plain.mean == pytest.approx(49.5) and plain.variance == pytest.approx(833.25)


def test_missing_field_and_wrong_dtype_errors_name_the_field():
    with pytest.raises(KeyError, match="'user_id'"):
        Categorical("user_id").build({"other": np.array(["a"])}, 2)
    with pytest.raises(TypeError, match="Numeric column 'name'"):
        Numeric("name").build({"name": np.array(["a"])}, 2)


def test_item_sequence_shares_the_item_field_by_default():
    table = {"recent_movie_ids": np.array([["", "7"], ["7", "3"]])}
    shared = ItemSequence("recent_movie_ids", max_length=4).build(table, 3)
    assert type(shared) is SequenceEncoder
    assert (shared.key, shared.name, shared.max_length, shared.embedding_dim) == (
        "recent_movie_ids",
        "recent_movie_ids",
        4,
        3,
    )
    assert shared.shared_item_field == "movie_id" and shared.vocabulary is None
    own = ItemSequence("recent_movie_ids", 2, shared_item_field=None, name="seq").build(table, 3)
    assert own.name == "seq" and own.shared_item_field is None
    assert own.vocabulary == ["7", "3"]  # by frequency, padding left out
    with pytest.raises(KeyError, match="'recent_movie_ids'"):
        ItemSequence("recent_movie_ids", shared_item_field=None).build({"x": np.array([1])}, 2)


def test_column_config_round_trip():
    column = MultiCategorical("movie_genres", padding="-1", max_tokens=5)
    assert column_from_config(column.to_config()) == column
    sequence = ItemSequence("recent_movie_ids", max_length=7, shared_item_field=None)
    assert column_from_config(sequence.to_config()) == sequence
    assert sequence.to_config()["class"] == "ItemSequence"
    with pytest.raises(ValueError, match="Unknown column class"):
        column_from_config({"class": "Nope", "key": "x"})

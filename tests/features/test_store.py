"""FeatureStore joins side features by id, with a defined row for unknown ids."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features import FeatureStore
from tfrec.features.store import string_tensor, utf8

USERS = {
    "user_id": np.array(["1", "2"]),
    "user_gender": np.array([True, False]),
    "raw_user_age": np.array([20.0, 30.0], np.float32),
}
MOVIES = {
    "movie_id": np.array(["10", "20", "30"]),
    "movie_title": np.array(["Café (1990)", "B (1991)", "C (1992)"]),
    "movie_genres": np.array([[1, -1], [2, 3], [4, -1]]),
}
HISTORY = {"user_id": np.array(["2"]), "recent_movie_ids": np.array([["20", "10"]])}


def test_join_by_id_adds_every_side_feature():
    store = FeatureStore(USERS, MOVIES, HISTORY)
    out = store.join({"user_id": tf.constant(["2", "1"]), "movie_id": tf.constant(["30", "10"])})
    np.testing.assert_array_equal(out["user_gender"].numpy(), [False, True])
    np.testing.assert_array_equal(out["movie_genres"].numpy(), [[4, -1], [1, -1]])
    assert out["movie_title"].numpy()[1].decode() == "Café (1990)"
    np.testing.assert_array_equal(
        out["recent_movie_ids"].numpy().astype(str), [["20", "10"], ["", ""]]
    )


def test_unknown_ids_get_the_missing_row():
    store = FeatureStore(USERS, MOVIES)
    out = store.join({"user_id": tf.constant(["999"]), "movie_id": tf.constant(["nope"])})
    assert out["movie_title"].numpy()[0] == b""
    np.testing.assert_array_equal(out["movie_genres"].numpy(), [[-1, -1]])
    assert np.isnan(out["raw_user_age"].numpy()[0])
    assert not out["user_gender"].numpy()[0]


def test_join_by_index_matches_join_by_id():
    store = FeatureStore(USERS, MOVIES)
    by_id = store.join({"user_id": tf.constant(["2"]), "movie_id": tf.constant(["20"])})
    by_index = store.join_by_index({}, tf.constant([1]), tf.constant([1]))
    for key in ("user_gender", "movie_genres", "movie_title"):
        np.testing.assert_array_equal(by_id[key].numpy(), by_index[key].numpy())


def test_duplicate_ids_are_rejected():
    with pytest.raises(ValueError, match="duplicate movie_id"):
        FeatureStore(None, {"movie_id": np.array(["1", "1"])})


def test_string_tensor_holds_the_utf8_bytes_of_any_string_column():
    """TensorFlow's own encoding of a unicode array (fast) gives exactly `utf8`'s bytes."""
    column = np.array([["é", ""], ["42", "Zoë"]])
    expected = utf8(column)
    for form in (column, expected, column.astype(object)):
        got = string_tensor(form)
        assert got.dtype == tf.string and got.shape == (2, 2)
        np.testing.assert_array_equal(got.numpy().astype(bytes), expected)
    assert string_tensor(np.arange(3)).dtype == tf.int64

"""The tfds source: conversion of TFDS-shaped datasets into tables (no network)."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import FetchError, load_movielens, parsers, ratings_features, schema
from tfrec.data._tfds import tables_from_tfds

_PERMUTATION = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]  # TFDS shuffles examples


def _tfds_like(tables, variant):
    """Builds in-memory ``-ratings`` / ``-movies`` datasets with TFDS's element spec."""
    movies, users, ratings = tables.movies, tables.users, tables.ratings
    rows = np.array(_PERMUTATION)
    movie_row = np.searchsorted(
        movies["movie_id"].astype(int), ratings["movie_id"][rows].astype(int)
    )
    user_row = np.searchsorted(users["user_id"].astype(int), ratings["user_id"][rows].astype(int))
    genres = tf.RaggedTensor.from_tensor(movies["movie_genres"], padding=np.int64(-1))
    columns = {
        "movie_id": ratings["movie_id"][rows],
        "movie_title": movies["movie_title"][movie_row],
        "movie_genres": tf.gather(genres, movie_row),
        "user_id": ratings["user_id"][rows],
        "user_rating": ratings["user_rating"][rows],
        "timestamp": ratings["timestamp"][rows],
    }
    for name in ratings_features(variant):
        if name in schema.USER_COLUMNS and name != "user_id":
            columns[name] = users[name][user_row]
    dense = lambda x: {k: tf.identity(v) for k, v in x.items()}  # noqa: E731
    ratings_ds = tf.data.Dataset.from_tensor_slices(columns).map(dense)
    movie_order = np.array([3, 0, 4, 2, 1])
    movie_cols = {
        "movie_id": movies["movie_id"][movie_order],
        "movie_title": movies["movie_title"][movie_order],
        "movie_genres": tf.gather(genres, movie_order),
    }
    movies_ds = tf.data.Dataset.from_tensor_slices(movie_cols).map(dense)
    return ratings_ds, movies_ds


def test_conversion_recovers_the_tables(tmp_path, files):
    official = parsers.parse_directory(files.write_100k(tmp_path / "raw"))
    ratings_ds, movies_ds = _tfds_like(official, "100k")
    assert ratings_ds.element_spec == ratings_features("100k")
    converted = tables_from_tfds(ratings_ds, movies_ds, "100k")
    for name, column in official.ratings.items():  # ratings keep TFDS's order
        np.testing.assert_array_equal(converted.ratings[name], column[_PERMUTATION], name)
    for mine, theirs in ((converted.movies, official.movies), (converted.users, official.users)):
        assert sorted(mine) == sorted(theirs)
        for name in theirs:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)
            assert mine[name].dtype.kind == theirs[name].dtype.kind


def test_conversion_rejects_wrong_dataset(tmp_path, files):
    official = parsers.parse_directory(files.write_100k(tmp_path / "raw"))
    _, movies_ds = _tfds_like(official, "100k")
    with pytest.raises(ValueError, match="lacks features of movielens/100k-ratings"):
        tables_from_tfds(movies_ds, movies_ds, "100k")


def test_tfds_source_end_to_end(tmp_path, files, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    official = parsers.parse_directory(files.write_100k(tmp_path / "raw"))
    ratings_ds, movies_ds = _tfds_like(official, "100k")
    calls = []

    def fake_load(name, split, data_dir):
        calls.append((name, split))
        return ratings_ds if name.endswith("-ratings") else movies_ds

    monkeypatch.setattr(tfds, "load", fake_load)
    ml = load_movielens("100k", source="tfds")
    assert calls == [("movielens/100k-ratings", "train"), ("movielens/100k-movies", "train")]
    assert ml.source == "tfds" and (ml.num_users, ml.num_movies, ml.num_ratings) == (3, 5, 10)
    assert ml.as_dataset().element_spec == ratings_features("100k")
    assert load_movielens("100k").source == "tfds"  # the cached tables are reused by auto
    assert len(calls) == 2


def test_tfds_failure_is_explained(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def failing_load(name, split, data_dir):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tfds, "load", failing_load)
    with pytest.raises(FetchError, match="ConnectionError: no route to host.*Fix: retry"):
        load_movielens("1m", source="tfds")

"""MovieLens schema: dtypes and names vs TFDS, indices, tf.data views, reference errors."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import (
    DataError,
    DataWarning,
    leave_one_out,
    load_movielens,
    parsers,
    ratings_features,
    schema,
)
from tfrec.data.movielens import from_tables


def _tfds_spec(name: str, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder(f"movielens/{name}", data_dir=str(tmp_path / "tfds"))
    return builder.info.features.get_tensor_spec()


@pytest.mark.parametrize("variant", schema.VARIANTS)
def test_feature_specs_equal_tfds(variant, tmp_path):
    assert ratings_features(variant) == _tfds_spec(f"{variant}-ratings", tmp_path)


def test_label_names_equal_tfds(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    info = tfds.builder("movielens/100k-ratings", data_dir=str(tmp_path / "t")).info
    assert list(schema.GENRE_NAMES) == info.features["movie_genres"].feature.names
    assert list(schema.OCCUPATION_NAMES) == info.features["user_occupation_label"].names


def test_load_100k_local_schema_and_indices(tmp_path, files):
    ml = load_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    assert (ml.variant, ml.source) == ("100k", "local")
    assert (ml.num_users, ml.num_movies, ml.num_ratings) == (3, 5, 10)
    r = ml.ratings
    assert {k: v.dtype.kind for k, v in r.items()} == {
        "user_id": "U",
        "movie_id": "U",
        "user_rating": "f",
        "timestamp": "i",
        "user_index": "i",
        "movie_index": "i",
    }
    assert r["user_rating"].dtype == np.float32 and r["user_index"].dtype == np.int64
    np.testing.assert_array_equal(ml.user_ids[r["user_index"]], r["user_id"])
    np.testing.assert_array_equal(ml.movie_ids[r["movie_index"]], r["movie_id"])
    assert r["movie_index"].tolist() == [0, 1, 2, 4, 0, 3, 1, 2, 3, 4]
    assert ml.movies["movie_genres"].dtype == np.int64


def test_as_dataset_matches_tfds_spec_and_values(tmp_path, files):
    ml = load_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    dataset = ml.as_dataset()
    assert dataset.element_spec == _tfds_spec("100k-ratings", tmp_path)
    elements = list(dataset.as_numpy_iterator())
    assert len(elements) == 10
    third = elements[2]  # user 1 rated movie 3 ("Four Rooms", Thriller) 4 stars at t=200
    assert third["movie_id"] == b"3" and third["movie_title"] == b"Four Rooms (1995)"
    assert third["movie_genres"].tolist() == [16]
    assert third["user_rating"] == 4.0 and third["timestamp"] == 200
    assert third["user_gender"] and third["raw_user_age"] == 24.0
    assert third["bucketized_user_age"] == 18.0 and third["user_occupation_label"] == 18
    assert elements[0]["movie_genres"].tolist() == [2, 3, 4]


def test_as_dataset_on_a_split_and_movies_dataset(tmp_path, files):
    ml = load_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    test = leave_one_out(ml.ratings).test
    got = [(e["user_id"], e["movie_id"]) for e in ml.as_dataset(test).as_numpy_iterator()]
    assert got == [(b"1", b"5"), (b"3", b"5")]
    movies = ml.movies_dataset()
    assert movies.element_spec == _tfds_spec("100k-movies", tmp_path)
    titles = [e["movie_title"].decode() for e in movies.as_numpy_iterator()]
    assert titles[3:] == ["unknown", "Café Society, The (1990)"]


def test_1m_and_csv_variants(tmp_path, files):
    ml = load_movielens("1m", path=files.write_1m(tmp_path / "raw1m"))
    assert ml.as_dataset().element_spec == ratings_features("1m")
    assert "raw_user_age" not in ml.users
    ml = load_movielens("20m", path=files.write_csv(tmp_path / "raw20m"))
    assert ml.users is None
    assert ml.user_ids.tolist() == ["1", "2", "10"]  # sorted numerically, not as text
    assert ml.ratings["user_index"].tolist() == [0, 1, 2]
    assert ml.as_dataset().element_spec == ratings_features("20m")
    element = next(ml.as_dataset().as_numpy_iterator())
    assert element["movie_genres"].tolist() == [4, 7, 14] and element["user_rating"] == 3.5


def test_ratings_with_unknown_movie_or_user_fail(tmp_path, files):
    tables = parsers.parse_directory(files.write_100k(tmp_path / "raw"))
    ratings = dict(tables.ratings, movie_id=tables.ratings["movie_id"].astype("U4"))
    ratings["movie_id"][0] = "99"
    with pytest.raises(ValueError, match=r"1 rows reference movie_id .*\['99'\]"):
        from_tables(parsers.Tables(ratings, tables.movies, tables.users), "100k", "local")
    users = {k: v[1:] for k, v in tables.users.items()}
    with pytest.raises(ValueError, match=r"4 rows reference user_id .*\['1'\]"):
        from_tables(parsers.Tables(tables.ratings, tables.movies, users), "100k", "local")
    with pytest.raises(ValueError, match="needs a users table"):
        from_tables(parsers.Tables(tables.ratings, tables.movies, None), "100k", "local")


def test_unknown_variant_lists_valid_ones(tmp_path, files):
    with pytest.raises(ValueError, match="100k, 1m, 20m, 25m, latest-small"):
        load_movielens("10m", path=files.write_100k(tmp_path / "raw"))


_REAL_CACHE = Path.home() / ".cache" / "tfrec"


@pytest.mark.skipif(
    not (_REAL_CACHE / "movielens" / "100k").is_dir(),
    reason="real ml-100k not cached (run tfrec.data.fetch_movielens('100k') once)",
)
def test_real_movielens_100k_counts():
    ml = load_movielens("100k", data_dir=_REAL_CACHE)
    assert (ml.num_users, ml.num_movies, ml.num_ratings) == (943, 1682, 100_000)
    assert ml.duplicates_dropped == 0  # ml-100k has no repeated (user, movie) pairs
    split = leave_one_out(ml.ratings)
    assert [len(part["user_id"]) for part in split] == [98_114, 943, 943]
    assert ml.movies["movie_title"][0] == "Toy Story (1995)"
    assert isinstance(ml.as_dataset(), tf.data.Dataset)


# Issue 14 finding 7: ratings checked for every source; duplicates keep the latest rating.


def test_from_tables_checks_ratings_of_every_source(tmp_path, files):
    tables = parsers.parse_directory(files.write_100k(tmp_path / "raw"))
    ratings = dict(tables.ratings, user_rating=tables.ratings["user_rating"].copy())
    ratings["user_rating"][3] = 9
    pattern = r"MovieLens 100k ratings \(source tfds\) row 3 \(user_id='1', movie_id='5'\)"
    with pytest.raises(DataError, match=pattern + ".*=9.0.*whole stars 1 to 5"):
        from_tables(parsers.Tables(ratings, tables.movies, tables.users), "100k", "tfds")


def test_duplicated_latest_rating_no_longer_lands_in_valid_and_test(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    with open(raw / "u.data", "a", encoding="latin-1") as handle:
        handle.write("3\t5\t1\t40\n")  # user 3's latest pair (3, 5) again, same time
    with pytest.warns(DataWarning, match=r"dropped 1 ratings .*user_id='3', movie_id='5'"):
        ml = load_movielens("100k", path=raw)
    assert ml.num_ratings == 10 and ml.duplicates_dropped == 1
    kept = (ml.ratings["user_id"] == "3") & (ml.ratings["movie_id"] == "5")
    assert ml.ratings["user_rating"][kept].tolist() == [1.0]  # the later row of the tie
    split = leave_one_out(ml.ratings)
    pairs = [set(zip(p["user_id"], p["movie_id"], strict=True)) for p in split]
    assert not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])
    assert ("3", "5") in pairs[2] and ("3", "4") in pairs[1]

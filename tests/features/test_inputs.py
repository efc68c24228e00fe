"""A model's inputs from a SplitData: joined tables, histories as of a split, placement by side.

Hand-made ratings (user, movie, timestamp), leave-one-out split:
user 1 watches 1 (t100), 3 (t200), 2 (t300), 5 (t300, later in file) -> train 1, 3; valid 2;
test 5. User 2 watches 1, 4 (train only). User 3 watches 2, 3, 4, 5 -> train 2, 3; valid 4;
test 5. Movie index = id - 1, user index = id - 1.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.data.movielens import from_tables
from tfrec.data.parsers import Tables
from tfrec.features import RECENT_MOVIES, Categorical, FeatureStore, MultiCategorical, build_tower
from tfrec.features.inputs import ModelInputs, example_table, feature_store, user_table
from tfrec.models import FM

RATINGS = [
    ("1", "1", 100), ("1", "2", 300), ("1", "3", 200), ("1", "5", 300),
    ("2", "1", 50), ("2", "4", 60),
    ("3", "2", 10), ("3", "3", 20), ("3", "4", 30), ("3", "5", 40),
]  # fmt: skip
GENRES = [[2, 3], [0, 1], [16, -1], [17, -1], [7, -1]]


@pytest.fixture(scope="module")
def data():
    users, movies, times = (np.array(c) for c in zip(*RATINGS, strict=True))
    ratings = {
        "user_id": users,
        "movie_id": movies,
        "user_rating": np.full(10, 4.0),
        "timestamp": times,
    }
    items = {
        "movie_id": np.array(["1", "2", "3", "4", "5"]),
        "movie_title": np.array(["A (1995)", "B (1995)", "C (1990)", "D (1980)", "E (1999)"]),
        "movie_genres": np.array(GENRES, np.int64),
    }
    people = {
        "user_id": np.array(["1", "2", "3"]),
        "user_gender": np.array([True, False, True]),
        "bucketized_user_age": np.array([25.0, 50.0, 1.0], np.float32),
        "user_occupation_label": np.array([1, 2, 3], np.int64),
        "user_occupation_text": np.array(["technician", "other", "student"]),
        "user_zip_code": np.array(["85711", "94043", "32067"]),
        "raw_user_age": np.array([24.0, 53.0, 17.0], np.float32),
    }
    return SplitData.from_movielens(from_tables(Tables(ratings, items, people), "100k", "hand"))


@pytest.fixture(scope="module")
def model(data):
    table = example_table(data, history_length=2)
    user = build_tower(
        table,
        [Categorical("user_id"), Categorical("user_gender"), MultiCategorical(RECENT_MOVIES)],
        4,
        name="user_tower",
    )
    movie = build_tower(
        table,
        [Categorical("movie_id"), MultiCategorical("movie_genres", padding="-1")],
        4,
        name="movie_tower",
    )
    return FM(user, movie, task="ranking", history_length=2)


def _ids(model, tower, name, values):
    tower = getattr(model, tower)
    encoder = tower.encoder(name)
    return encoder.preprocess({encoder.key: tf.constant(values)}).numpy()


def _strings(values):
    return np.char.decode(np.asarray(values).astype(bytes)).tolist()


def test_example_table_joins_side_features_and_earlier_histories(data):
    table = example_table(data, history_length=2)
    assert set(table) == {*data.train, *data.items, *data.users, RECENT_MOVIES}
    # Train rows in file order: (1,1) (1,3) (2,1) (2,4) (3,2) (3,3).
    assert table["movie_id"].tolist() == ["1", "3", "1", "4", "2", "3"]
    assert table["movie_title"].tolist() == [
        "A (1995)",
        "C (1990)",
        "A (1995)",
        "D (1980)",
        "B (1995)",
        "C (1990)",
    ]
    assert table["user_gender"].tolist() == [True, True, False, False, True, True]
    assert table[RECENT_MOVIES].tolist() == [
        ["", ""],
        ["", "1"],
        ["", ""],
        ["", "1"],
        ["", ""],
        ["", "2"],
    ]
    assert RECENT_MOVIES not in example_table(data)
    joined = {"x": np.arange(3)}
    assert example_table(joined, 5) is joined
    with pytest.raises(TypeError, match="SplitData or a joined table.*Received: data=list"):
        example_table([1, 2])


@pytest.mark.parametrize(
    ("as_of", "histories"),
    [
        ("valid", [["1", "3"], ["1", "4"], ["2", "3"]]),
        ("test", [["3", "2"], ["1", "4"], ["3", "4"]]),
        ("all", [["2", "5"], ["1", "4"], ["4", "5"]]),
    ],
)
def test_user_table_and_store_histories_as_of_a_split(data, as_of, histories):
    users = user_table(data, as_of, history_length=2)
    assert users["user_id"].tolist() == ["1", "2", "3"]
    assert users[RECENT_MOVIES].tolist() == histories
    store = feature_store(data, as_of, history_length=2)
    assert isinstance(store, FeatureStore)
    out = store.join(
        {"user_id": tf.constant(["3", "1", "nobody"]), "movie_id": tf.constant(["4"] * 3)}
    )
    assert [_strings(row) for row in out[RECENT_MOVIES].numpy()] == [
        histories[2],
        histories[0],
        ["", ""],
    ]
    np.testing.assert_array_equal(out["movie_genres"], [GENRES[3]] * 3)
    np.testing.assert_array_equal(out["user_gender"], [True, True, False])


def test_no_history_at_train_time_or_without_a_length(data):
    assert RECENT_MOVIES not in user_table(data, "train", history_length=2)
    assert RECENT_MOVIES not in user_table(data, "test", history_length=0)
    store = feature_store(data, "test", history_length=0)
    assert store.history is None
    assert RECENT_MOVIES not in store.join({"user_id": tf.constant(["1"])})


def test_model_inputs_per_user_and_per_item(data, model):
    inputs = ModelInputs.build(model, data, "test")
    assert set(inputs.per_user) == {
        "user_id",
        "user_tower/user_id",
        "user_tower/user_gender",
        "user_tower/recent_movie_ids",
    }
    assert set(inputs.per_item) == {"movie_id", "movie_tower/movie_id", "movie_tower/movie_genres"}
    assert inputs.per_row == {}
    np.testing.assert_array_equal(
        inputs.per_user["user_tower/recent_movie_ids"],
        _ids(model, "query_tower", RECENT_MOVIES, [["3", "2"], ["1", "4"], ["3", "4"]]),
    )
    np.testing.assert_array_equal(
        inputs.per_item["movie_tower/movie_genres"],
        _ids(model, "candidate_tower", "movie_genres", np.array(GENRES)),
    )
    features = inputs.gather(tf.constant([2, 0]), tf.constant([4, 1]))
    assert set(features) == {*inputs.per_user, *inputs.per_item}
    assert _strings(features["user_id"]) == ["3", "1"]
    assert _strings(features["movie_id"]) == ["5", "2"]
    np.testing.assert_array_equal(
        features["user_tower/user_gender"], _ids(model, "query_tower", "user_gender", [True, True])
    )
    assert set(inputs.users(tf.constant([1]))) == set(inputs.per_user)
    # The preprocessed features score exactly like raw features joined by id.
    raw = feature_store(data, "test", 2).join(
        {"user_id": tf.constant(["3", "1"]), "movie_id": tf.constant(["5", "2"])}
    )
    np.testing.assert_allclose(model(features), model(raw), rtol=1e-6)


def test_training_rows_give_per_row_histories(data, model):
    rows = dict(data.train, **{RECENT_MOVIES: example_table(data, 2)[RECENT_MOVIES]})
    inputs = ModelInputs.build(model, data, "train", rows=rows)
    assert set(inputs.per_row) == {"user_tower/recent_movie_ids"}
    assert "user_tower/recent_movie_ids" not in inputs.per_user
    features = inputs.gather(tf.constant([2]), tf.constant([0]), tf.constant([5]))
    np.testing.assert_array_equal(
        features["user_tower/recent_movie_ids"],
        _ids(model, "query_tower", RECENT_MOVIES, [["", "2"]]),
    )
    with pytest.raises(KeyError, match="reads 'recent_movie_ids', which neither the user table"):
        ModelInputs.build(model, data, "train")  # no rows: no history at train time


def test_candidate_features_are_always_per_item(data, model):
    # Regression: a rows table that also holds item columns (here the joined example table)
    # must not put the candidate side per row, or a sampled negative (gathered with its
    # positive's row) would carry the positive's movie id and genres: a label leak.
    rows = example_table(data, history_length=2)
    assert {"movie_id", "movie_genres"} <= set(rows)
    inputs = ModelInputs.build(model, data, "train", rows=rows)
    assert set(inputs.per_row) == {"user_tower/recent_movie_ids"}
    assert not [key for key in inputs.per_row if key.startswith("movie_tower/")]
    # Row 1 is user 1's positive (movie 3); pair that row with the negative movie 4.
    features = inputs.gather(tf.constant([0]), tf.constant([3]), tf.constant([1]))
    assert _strings(features["movie_id"]) == ["4"]
    np.testing.assert_array_equal(
        features["movie_tower/movie_id"], _ids(model, "candidate_tower", "movie_id", ["4"])
    )
    np.testing.assert_array_equal(
        features["movie_tower/movie_genres"],
        _ids(model, "candidate_tower", "movie_genres", np.array([GENRES[3]])),
    )


def test_raw_keys_follow_their_side(data, model):
    fake = SimpleNamespace(
        query_tower=model.query_tower,
        candidate_tower=model.candidate_tower,
        history_length=2,
        raw_query_keys=("user_occupation_text",),
        raw_candidate_keys=("movie_title",),
    )
    inputs = ModelInputs.build(fake, data, "valid")
    assert _strings(inputs.per_user["user_occupation_text"]) == ["technician", "other", "student"]
    assert _strings(inputs.per_item["movie_title"])[2] == "C (1990)"
    fake.raw_query_keys = ("movie_title",)  # not a user feature
    with pytest.raises(KeyError, match="reads 'movie_title' raw, which the user table lacks"):
        ModelInputs.build(fake, data, "valid")
    fake.raw_query_keys, fake.raw_candidate_keys = (), ("user_zip_code",)
    with pytest.raises(KeyError, match="reads 'user_zip_code' raw, which the item table lacks"):
        ModelInputs.build(fake, data, "valid")

"""SequenceEncoder: left padding and truncation, the mask, ties to the item table, round trips."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.features import CategoricalEncoder, SequenceEncoder, Tower
from tfrec.models import FM

VOCABULARY = ["1", "2", "3"]
TABLE = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0  # row 0 is the OOV row


def _encoder(max_length=3, **kwargs):
    encoder = SequenceEncoder("history", max_length, 2, vocabulary=VOCABULARY, **kwargs)
    encoder({"history": tf.constant([[""]])})  # builds the table
    encoder.embedding.set_weights([TABLE])
    return encoder


@pytest.mark.parametrize(
    ("rows", "ids"),
    [
        ([["", "1", "2"]], [[-1, 1, 2]]),  # already L wide
        ([["1", "2"]], [[-1, 1, 2]]),  # shorter: padded on the left
        ([["3", "1", "2", "3"]], [[1, 2, 3]]),  # longer: the newest L kept
        ([["", "", "", "", "2"]], [[-1, -1, 2]]),
        ([["9", "2", ""]], [[0, 2, -1]]),  # unknown id: the OOV row, not padding
    ],
)
def test_preprocess_pads_and_truncates_on_the_left(rows, ids):
    np.testing.assert_array_equal(_encoder().preprocess({"history": tf.constant(rows)}), ids)


def test_ragged_input_is_padded_on_the_left():
    ragged = tf.ragged.constant([["1"], ["2", "3"], [], ["3", "1", "2", "1"]])
    ids = _encoder().preprocess({"history": ragged})
    np.testing.assert_array_equal(ids, [[-1, -1, 1], [-1, 2, 3], [-1, -1, -1], [1, 2, 1]])


def test_integer_ids_with_their_own_padding():
    encoder = SequenceEncoder("h", 3, 2, vocabulary=[7, 8], padding_value=-1)
    ids = encoder.preprocess({"h": tf.constant([[-1, 8, 7], [7, 9, 8]], tf.int64)})
    np.testing.assert_array_equal(ids, [[-1, 2, 1], [1, 0, 2]])


def test_embeddings_mask_and_zeros_at_padding():
    out = _encoder()({"history": tf.constant([["", "3", "1"], ["2", "9", "2"]])})
    np.testing.assert_array_equal(out["mask"], [[False, True, True], [True, True, True]])
    expected = np.stack([[np.zeros(2), TABLE[3], TABLE[1]], [TABLE[2], TABLE[0], TABLE[2]]])
    np.testing.assert_allclose(out["embeddings"], expected)
    assert out["embeddings"].shape == (2, 3, 2) and out["mask"].dtype == tf.bool


def _item_field(dim=2):
    return CategoricalEncoder("movie_id", VOCABULARY, dim, name="movie_id")


def test_tie_uses_the_exact_item_table():
    item = _item_field()
    item({"movie_id": tf.constant(["1"])})
    shared = SequenceEncoder("history", 3, 2, shared_item_field="movie_id")
    assert shared.lookup is None and shared.embedding is None and shared.vocabulary is None
    shared.tie(item)
    out = shared({"history": tf.constant([["", "2", "3"]])})
    assert shared.embedding.embeddings is item.embedding.embeddings  # one variable
    own, _ = item({"movie_id": tf.constant(["2", "3"])})
    np.testing.assert_allclose(out["embeddings"][0, 1:], own)
    item.embedding.embeddings.assign_add(tf.ones_like(item.embedding.embeddings))
    moved = shared({"history": tf.constant([["", "2", "3"]])})["embeddings"]
    np.testing.assert_allclose(moved[0, 1:], own.numpy() + 1.0)


def test_a_model_ties_its_towers_and_trains_one_table():
    user = CategoricalEncoder("user_id", ["u"], 2, name="user_id")
    sequence = SequenceEncoder("history", 3, 2, shared_item_field="movie_id", name="history")
    model = FM(
        Tower([user, sequence], name="user_tower"),
        Tower([_item_field()], name="movie_tower"),
        task="ranking",
        history_length=3,
    )
    features = {
        "user_id": tf.constant(["u", "u"]),
        "history": tf.constant([["", "1", "2"], ["3", "2", "1"]]),
        "movie_id": tf.constant(["3", "1"]),
    }
    model(features)
    item = model.candidate_tower.encoder("movie_id")
    assert model.query_tower.sequence.embedding is item.embedding
    alone = FM(
        Tower([CategoricalEncoder("user_id", ["u"], 2, name="user_id")], name="user_tower"),
        Tower([_item_field()], name="movie_tower"),
        task="ranking",
    )
    alone(features)
    assert len(model.trainable_variables) == len(alone.trainable_variables)  # no table added
    assert sum(v is item.embedding.embeddings for v in model.trainable_variables) == 1
    query = model.encode_query(model.preprocess_query(features))
    np.testing.assert_allclose(
        query["sequence"][1], item.embedding(tf.constant([3, 2, 1])), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"key": ""}, "`key` must be a non-empty feature name. Received: key=''"),
        ({"max_length": 0}, "`max_length` must be a positive integer. Received: max_length=0"),
        ({"embedding_dim": -1}, "Received: embedding_dim=-1"),
        ({"max_length": 2.0}, "Received: max_length=2.0"),
        ({"shared_item_field": "movie_id"},
         "exactly one of `vocabulary` and `shared_item_field`.*Received: vocabulary=a list"),
        ({"vocabulary": None}, "Received: vocabulary=None, shared_item_field=None"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs, pattern):
    arguments = {"key": "history", "max_length": 3, "embedding_dim": 2, "vocabulary": VOCABULARY}
    with pytest.raises(ValueError, match=pattern):
        SequenceEncoder(**{**arguments, **kwargs})


def test_bad_ties():
    with pytest.raises(ValueError, match="has its own vocabulary. Received: a tie to 'movie_id'"):
        _encoder().tie(_item_field())
    shared = SequenceEncoder("history", 3, 2, shared_item_field="movie_id")
    with pytest.raises(
        ValueError,
        match="single-valued item field.*Received: field 'movie_id' with embedding_dim=4",
    ):
        shared.tie(_item_field(dim=4))
    genres = CategoricalEncoder("g", ["1"], 2, multi_valued=True, name="g")
    with pytest.raises(ValueError, match="single-valued item field.*Received: field 'g'"):
        shared.tie(genres)
    with pytest.raises(ValueError, match="never tied to it. Fix:"):
        shared({"history": tf.constant([["1"]])})


@pytest.mark.parametrize("shared", [False, True])
def test_config_round_trip(shared):
    if shared:
        encoder = SequenceEncoder("history", 4, 2, shared_item_field="movie_id", name="seq")
        encoder.tie(_item_field())
    else:
        encoder = _encoder(max_length=4, name="seq")
    inputs = {"history": tf.constant([["1", "3"], ["", "2"]])}
    expected = encoder(inputs)
    config = encoder.get_config()
    assert {k: config[k] for k in ("key", "max_length", "embedding_dim", "padding_value")} == {
        "key": "history",
        "max_length": 4,
        "embedding_dim": 2,
        "padding_value": "",
    }
    for clone in (
        SequenceEncoder.from_config(config),
        tf.keras.layers.deserialize(tf.keras.layers.serialize(encoder)),
    ):
        assert type(clone) is SequenceEncoder and clone.get_config() == config
        if shared:  # the tie is the model's job, redone when the model is rebuilt
            item = _item_field()
            item({"movie_id": tf.constant(["1"])})
            item.embedding.set_weights(encoder.embedding.get_weights())
            clone.tie(item)
        else:
            clone(inputs)
            clone.set_weights(encoder.get_weights())
        got = clone(inputs)
        np.testing.assert_allclose(got["embeddings"], expected["embeddings"])
        np.testing.assert_array_equal(got["mask"], expected["mask"])


def test_savedmodel_round_trip(savedmodel_roundtrip):
    encoder = _encoder(max_length=4, name="sequence")
    history = tf.keras.Input(shape=(None,), dtype=tf.string, name="history")
    out = encoder({"history": history})
    named = {  # identity layers name the outputs, so the serving signature uses these names
        name: tf.keras.layers.Activation("linear", name=name)(tf.cast(value, tf.float32))
        for name, value in out.items()
    }
    model = tf.keras.Model({"history": history}, named)
    inputs = {"history": np.array([["", "1", "3"], ["2", "9", "1"]])}
    reloaded = savedmodel_roundtrip(model, inputs)
    got = reloaded({"history": tf.constant([["3", "2", "1", "3", "2"]])})
    np.testing.assert_allclose(got["embeddings"][0], TABLE[[2, 1, 3, 2]])

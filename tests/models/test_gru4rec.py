"""GRU4Rec: its query is a GRU run by hand in numpy over the real items of the history
(padding skipped), projected to the item size; states are causal; a short fit learns the next
movie of users who watch in a fixed cycle; model-specific errors."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit

from tfrec.features.inputs import feature_store
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import GRU4Rec, build_model
from tfrec.training import fit

SETTINGS = {"embedding_dim": 16, "history_length": 8, "gru_units": (16,), "dropout": 0.0}


@pytest.fixture(scope="module")
def model(tiny_data, sequential):
    model = sequential("gru4rec", tiny_data, gru_units=(5, 3))  # two stacked layers
    model.encode_query({RECENT_MOVIES: tf.constant([[""]])})
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # weights large enough for every gate to matter
        variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
    return model


def gru_by_hand(gru, inputs):
    """Keras' GRU (reset_after, gates z, r, h) over one sequence of real steps, from zero."""
    kernel, recurrent, bias = (w.numpy() for w in gru.cell.weights)
    units = recurrent.shape[0]
    state, outputs = np.zeros(units), []
    for x in inputs:
        xz, xr, xh = np.split(x @ kernel + bias[0], 3)
        hz, hr, hh = np.split(state @ recurrent + bias[1], 3)
        z, r = expit(xz + hz), expit(xr + hr)
        state = z * state + (1 - z) * np.tanh(xh + r * hh)
        outputs.append(state)
    return np.array(outputs)


def test_query_is_a_gru_over_the_real_items_by_hand(model, tiny_data, by_hand):
    store = feature_store(tiny_data, "test", 6)
    histories = store.join({"user_id": tf.constant(tiny_data.user_ids[:4])})[RECENT_MOVIES]
    short = ["", "", "", "", tiny_data.item_ids[5], tiny_data.item_ids[1]]
    histories = np.concatenate([histories.numpy().astype(str), [short]])
    query = model.encode_query({RECENT_MOVIES: tf.constant(histories)})["vector"].numpy()
    sequence, mask = by_hand.sequence(model, histories)
    kernel, bias = model.project.kernel.numpy(), model.project.bias.numpy()
    for row in range(len(histories)):
        steps = sequence[row][mask[row]]  # padding is skipped, not read as zeros
        for gru in model.grus:
            steps = gru_by_hand(gru, steps)
        np.testing.assert_allclose(query[row], steps[-1] @ kernel + bias, rtol=1e-4, atol=1e-5)
    assert model.gru_units == [5, 3] and model.project.units == 8


def test_states_are_causal_and_zero_at_padding(model, tiny_data):
    ids = tiny_data.item_ids
    sequence = np.array([["", "", ids[0], ids[1], ids[2], ids[3]]])
    states = model.states({RECENT_MOVIES: tf.constant(sequence)}).numpy()
    assert (states[0, :2] == 0).all() and (np.abs(states[0, 2:]).max(axis=1) > 0).all()
    sequence[0, 4] = ids[7]
    changed = model.states({RECENT_MOVIES: tf.constant(sequence)}).numpy()
    np.testing.assert_allclose(changed[0, :4], states[0, :4], atol=1e-6)
    assert np.abs(changed[0, 4:] - states[0, 4:]).max(axis=1).min() > 1e-4


def test_a_short_fit_learns_the_next_movie(cyclic_data, untrained_full_ranking):
    random = untrained_full_ranking("gru4rec", cyclic_data, SETTINGS)

    model = build_model("gru4rec", cyclic_data, **SETTINGS)
    history = fit(model, cyclic_data, epochs=2, batch_size=8, learning_rate=2e-2, verbose=0)
    history = history.history
    assert history["loss"][1] < history["loss"][0]
    assert history["val_full_ndcg@10"][-1] > random["full_ndcg@10"] + 0.25
    assert history["val_full_hr@10"][-1] > random["full_hr@10"] + 0.3


def test_model_specific_errors(tiny_data, sequential):
    with pytest.raises(ValueError, match=r"Received: gru_units=\[\]"):
        sequential("gru4rec", tiny_data, gru_units=())
    with pytest.raises(ValueError, match=r"Received: gru_units=\[8, 0\]"):
        sequential("gru4rec", tiny_data, gru_units=(8, 0))
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\). Received: dropout=1.0"):
        sequential("gru4rec", tiny_data, dropout=1.0)
    gru = sequential("gru4rec", tiny_data)
    with pytest.raises(TypeError, match="GRU4Rec has no self-attention to show"):
        gru.attention_maps({RECENT_MOVIES: tf.constant([["1"]])})
    assert GRU4Rec.cloze is False

"""SASRec: its query is the causal encoder's state at the newest position, computed here from
the history looked up by hand; attention never looks ahead; a 2-epoch fit on users who watch
movies in a fixed cycle learns the next movie; model-specific errors."""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import evaluate_model
from tfrec.features.inputs import feature_store
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models import SASRec, build_model


@pytest.fixture(scope="module")
def model(tiny_data, sequential):
    return sequential("sasrec", tiny_data)


@pytest.fixture(scope="module")
def histories(tiny_data):
    """Five users' test-time histories plus a short (left-padded) one, as raw movie ids."""
    store = feature_store(tiny_data, "test", 6)
    known = store.join({"user_id": tf.constant(tiny_data.user_ids[:5])})[RECENT_MOVIES]
    short = ["", "", "", tiny_data.item_ids[4], tiny_data.item_ids[2], tiny_data.item_ids[8]]
    return np.concatenate([known.numpy().astype(str), [short]])


def test_query_is_the_newest_state_of_the_causal_encoder(model, histories, by_hand):
    query = model.encode_query({RECENT_MOVIES: tf.constant(histories)})["vector"].numpy()
    sequence, mask = by_hand.sequence(model, histories)
    states = model.encoder(tf.constant(sequence, tf.float32), tf.constant(mask)).numpy()
    np.testing.assert_allclose(query, states[:, -1], rtol=1e-5, atol=1e-6)
    assert model.encoder.causal and model.encoder.norm_first and len(model.encoder.blocks) == 1
    # Every real item counts: replacing the oldest real one changes the query.
    older = histories.copy()
    older[:, 0] = np.where(older[:, 0] == "", "", older[:, 1])
    older[-1, 3] = histories[-1, 5]
    changed = model.encode_query({RECENT_MOVIES: tf.constant(older)})["vector"].numpy()
    assert (np.abs(changed - query).max(axis=1) > 1e-4).all()


def test_states_never_see_later_items(model, histories):
    states = model.states({RECENT_MOVIES: tf.constant(histories)}).numpy()
    newer = histories.copy()
    newer[:, -1] = newer[:, -2]  # a different newest item
    changed = model.states({RECENT_MOVIES: tf.constant(newer)}).numpy()
    np.testing.assert_allclose(changed[:, :-1], states[:, :-1], atol=1e-6)
    assert (np.abs(changed[:, -1] - states[:, -1]).max(axis=1) > 1e-4).all()
    assert (states[-1, :3] == 0).all()  # padding positions have no state


def test_attention_maps_of_a_users_history(model, histories):
    (weights,) = model.attention_maps({RECENT_MOVIES: tf.constant(histories)})
    weights = weights.numpy()
    assert weights.shape == (len(histories), 2, 6, 6)
    newest = weights[:, :, -1]  # what the newest position looks at
    np.testing.assert_allclose(newest.sum(-1), 1.0, rtol=1e-5)
    assert (newest[-1, :, :3] < 1e-7).all()  # never at padding
    assert (np.triu(weights[:-1], k=1) < 1e-7).all()  # never ahead (full histories)


def test_a_short_fit_learns_the_next_movie(fitted_sasrec, cyclic_data, untrained_full_ranking):
    history = fitted_sasrec.history
    assert history["loss"][1] < history["loss"][0]
    random = untrained_full_ranking("sasrec", cyclic_data, fitted_sasrec.settings)
    assert random["full_hr@10"] < 0.4  # 10 of ~49 unseen movies
    assert history["val_full_hr@10"][-1] >= 0.8
    assert history["val_full_ndcg@10"][-1] > random["full_ndcg@10"] + 0.4
    test = evaluate_model(fitted_sasrec.model, cyclic_data, "test", protocols=("full",))
    assert test["full_hr@10"] >= 0.8


def test_model_specific_errors(tiny_data, sequential):
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0.0, 1.0\). Received"):
        sequential("sasrec", tiny_data, dropout=1.0)
    with pytest.raises(ValueError, match="Received: num_blocks=0"):
        sequential("sasrec", tiny_data, num_blocks=0)
    odd = sequential("sasrec", tiny_data, num_heads=3)  # width 8
    with pytest.raises(ValueError, match="divisible by num_heads=3"):
        odd.encode_query({RECENT_MOVIES: tf.constant([["", "1"]])})
    with pytest.raises(TypeError, match=r"for model 'sasrec' \['gru_units'\]"):
        build_model("sasrec", tiny_data, gru_units=(8,))
    assert SASRec.cloze is False

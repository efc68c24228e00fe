"""DeepFM: linear + FM + DNN heads, its exact factorised scorer, training, round trips."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import evaluate_model
from tfrec.features.encoders import CategoricalEncoder
from tfrec.features.towers import Tower
from tfrec.models import CANDIDATES, DeepFM, build_model, ungroup
from tfrec.training import training_dataset

from .conftest import randomize

SMALL = {"embedding_dim": 4, "dnn_units": (8,), "history_length": 5}


@pytest.fixture(scope="module")
def batch(tiny_data):
    model = build_model("deepfm", tiny_data, **SMALL)
    ds = training_dataset(model, tiny_data, num_negatives=2, batch_size=64, seed=0)
    features = ungroup(next(iter(ds)))  # one row per pair
    model(_inputs(features))  # records the serving input structure (no label)
    return model, features


def _inputs(features):
    return {k: v for k, v in features.items() if k not in ("label", "movie_index")}


def test_logit_is_sum_of_linear_fm_and_dnn_heads(batch):
    model, features = batch
    logits = model(features).numpy()
    query, candidate = model.query_tower(features), model.candidate_tower(features)
    e = np.concatenate([query["embeddings"], candidate["embeddings"]], axis=1)
    w = np.concatenate([query["weights"], candidate["weights"]], axis=1)
    pairwise = sum(
        (e[:, i, :] * e[:, j, :]).sum(-1)
        for i in range(e.shape[1])
        for j in range(i + 1, e.shape[1])
    )
    linear = w.sum(1) + model.linear.get_weights()[0]
    deep = model.dnn(e.reshape(e.shape[0], -1)).numpy()[:, 0]
    np.testing.assert_allclose(logits, linear + pairwise + deep, rtol=1e-4, atol=1e-5)


def test_parts_add_up_by_hand():
    """One user field and one item field, k=1, DNN of one unit: every term checked by hand."""
    user = Tower([CategoricalEncoder("u", hash_bins=2, embedding_dim=1, name="u")], name="user")
    item = Tower([CategoricalEncoder("i", hash_bins=2, embedding_dim=1, name="i")], name="item")
    model = DeepFM(user, item, dnn_units=[1], dropout=0.0, batch_norm=False, retrieval_weight=0.0)
    ids = {"user/u": tf.constant([0]), "item/i": tf.constant([0])}
    model(ids)
    model.linear.bias.assign(0.5)
    user.encoders[0].embedding.embeddings.assign([[2.0], [0.0]])
    user.encoders[0].weight.embeddings.assign([[1.0], [0.0]])
    item.encoders[0].embedding.embeddings.assign([[3.0], [0.0]])
    item.encoders[0].weight.embeddings.assign([[-2.0], [0.0]])
    dense, out = model.dnn._blocks[0], model.dnn._blocks[-1]
    dense.kernel.assign([[1.0], [-1.0]])
    dense.bias.assign([4.0])
    out.kernel.assign([[10.0]])
    out.bias.assign([0.0])
    u, i = model.encode_query(ids), model.encode_candidates(ids)
    # linear 0.5 + 1 - 2; FM 2*3 = 6; DNN relu(2 - 3 + 4) * 10 = 30.
    assert u["linear"].numpy()[0] == pytest.approx(1.5)
    assert i["linear"].numpy()[0] == pytest.approx(-2.0)
    assert u["fm"].numpy()[0] == 0.0 and i["fm"].numpy()[0] == 0.0  # one field per side
    assert u["hidden"].numpy()[0, 0] == pytest.approx(6.0)  # 2 * 1 + bias 4
    assert i["hidden"].numpy()[0, 0] == pytest.approx(-3.0)  # 3 * -1, no bias
    assert model(ids).numpy()[0] == pytest.approx(-0.5 + 6 + 30)
    assert model.score_all(u, i).numpy()[0, 0] == pytest.approx(35.5)
    assert model.score_gathered(u, i, [[0, 0]]).numpy().tolist() == [[35.5, 35.5]]


def test_encodings_in_training_skip_the_parts(batch):
    model, features = batch
    assert "hidden" not in model.encode_query(features, training=True)
    assert {"hidden", "fm", "sum", "linear"} <= set(model.encode_query(features))


def test_training_lowers_loss_and_beats_random(tiny_data):
    model = build_model("deepfm", tiny_data, embedding_dim=8, dnn_units=(16,), history_length=5)
    model.compile(tf.keras.optimizers.Adam(1e-2))
    ds = training_dataset(model, tiny_data, num_negatives=2, batch_size=128, seed=0)
    history = model.fit(ds, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["auc"][-1] > 0.7
    sampled = evaluate_model(model, tiny_data, "test", protocols=("sampled",), num_negatives=39)
    # Random ranking of the target among 1 + 39 candidates gives HR@10 = 10 / 40 = 0.25.
    assert sampled["sampled_hr@10"] > 0.4


def test_retrieval_task_adds_a_loss(batch):
    model, features = batch
    with_retrieval = DeepFM.from_config({**model.get_config(), "retrieval_weight": 1.0})
    with_retrieval(features)
    with_retrieval.set_weights(model.get_weights())
    plain = model.compute_loss(features).numpy()
    assert with_retrieval.compute_loss(features).numpy() > plain


def test_invalid_hyperparameters_are_named(batch):
    model, _ = batch
    config = model.get_config()
    for name, value in (
        ("dnn_units", []),
        ("dropout", 1.5),
        ("l2", -1.0),
        ("retrieval_weight", -1),
        ("history_length", 2.5),
    ):
        with pytest.raises(ValueError, match=f"Received: {name}"):
            DeepFM.from_config({**config, name: value})


def test_config_round_trip(batch, model_config_roundtrip):
    model, features = batch
    clone = model_config_roundtrip(model, _inputs(features))
    assert clone.history_length == 5 and clone.dnn_units == [8]


def test_savedmodel_round_trip(ranking_table, features, savedmodel_roundtrip):
    model = build_model("deepfm", ranking_table, embedding_dim=3, dnn_units=(4,),
                        batch_norm=True, dropout=0.2, history_length=4)  # fmt: skip
    model(features)
    randomize(model, seed=1, scale=0.3)
    savedmodel_roundtrip(model, features)


def test_mixed_precision_option_builds_bfloat16_and_restores_policy(tiny_data):
    before = tf.keras.mixed_precision.global_policy().name
    model = build_model("deepfm", tiny_data, mixed_precision=True, **SMALL)
    assert tf.keras.mixed_precision.global_policy().name == before
    assert model.dnn.compute_dtype == "bfloat16" and model.dnn.variable_dtype == "float32"
    ds = training_dataset(model, tiny_data, num_negatives=1, batch_size=4)
    batch = next(iter(ds))
    logits = model({k: v for k, v in ungroup(batch).items() if k != "label"})
    assert logits.dtype == tf.float32
    assert np.isfinite(model.compute_loss(batch, training=True).numpy())  # the grouped path
    with pytest.raises(ValueError, match="mixed_precision"):
        build_model("deepfm", tiny_data, mixed_precision="yes")


def gradients_of(model, batches, training):
    """Each batch's loss and its gradient for every trainable variable (dense numpy)."""
    out = []
    for batch in batches:
        with tf.GradientTape() as tape:
            loss = model.compute_loss(batch, training=training)
        grads = tape.gradient(loss, model.trainable_variables)
        out.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
    return out


@pytest.mark.parametrize("training", [False, True])
def test_a_grouped_batch_trains_exactly_as_its_pairs(tiny_data, training, monkeypatch):
    """Training batches are grouped by positive and DeepFM computes each query's share (its FM
    parts and its slice of the DNN's first layer) once per group. Loss and every gradient must
    equal those of the same batch as one row per pair, with batch norm (statistics over every
    pair), the auxiliary retrieval loss and the l2 penalty; dropout 0 keeps both deterministic."""
    model = build_model("deepfm", tiny_data, **{**SMALL, "dnn_units": (8, 4)}, batch_norm=True,
                        retrieval_weight=0.5, l2=1e-3)  # fmt: skip
    grouped = next(iter(training_dataset(model, tiny_data, num_negatives=3, batch_size=64, seed=2)))
    flat = ungroup(grouped)
    assert grouped["label"].shape == (16, 4) and flat["label"].shape == (64,)
    model(_inputs(flat))
    randomize(model, scale=0.3)
    (loss, grads), (flat_loss, flat_grads) = gradients_of(model, [grouped, flat], training)
    assert loss == pytest.approx(flat_loss, rel=1e-5)
    for variable, got, expected in zip(model.trainable_variables, grads, flat_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=variable.name)

    def per_pair(*args, **kwargs):
        raise AssertionError("the grouped path must not score pair by pair")

    monkeypatch.setattr(model, "score_pairs", per_pair)
    rows, encode = [], model.encode_candidates

    def counted(features, training=False):
        rows.append(int(tf.shape(features["movie_index"])[0]))
        return encode(features, training)

    monkeypatch.setattr(model, "encode_candidates", counted)
    assert float(model.compute_loss(grouped, training=training)) == pytest.approx(loss, rel=1e-5)
    distinct = np.unique(grouped[CANDIDATES]["movie_index"].numpy()).size
    assert rows == [distinct] and distinct < 64  # each distinct candidate encoded once
    monkeypatch.setattr(model, "distinct_candidates", False)  # one encoding per pair: the same
    assert float(model.compute_loss(grouped, training=training)) == pytest.approx(loss, rel=1e-5)
    assert rows[-1] == 64

"""The sequential models' shared contract (tfrec/models/sequential.py), for SASRec, GRU4Rec and
BERT4Rec alike: one item table for histories and candidates, dot-product scores, every loss
(full softmax, BCE, gBCE) worked out by hand from the batch, the sampled softmax, the l2
penalty, item side features, errors, config and run-directory round trips. Each model's own
query (its backbone) is checked by hand in test_sasrec.py, test_gru4rec.py, test_bert4rec.py.
"""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_expit, logsumexp

from tfrec.evaluation import score_fn
from tfrec.features.columns import Categorical
from tfrec.features.inputs import feature_store
from tfrec.features.towers import RECENT_MOVIES, build_tower
from tfrec.models import SASRec
from tfrec.models.base import encode_catalogue
from tfrec.models.sequential import LOSSES, SEQUENCE_DEFAULTS, sequence_task, sequence_towers
from tfrec.training import training_dataset
from tfrec.workflow import load_model, save_model

NAMES = ["sasrec", "gru4rec", "bert4rec"]
USERS = np.arange(5)


@pytest.fixture(scope="module")
def store(tiny_data):
    return feature_store(tiny_data, "test", 6)


@pytest.fixture(scope="module")
def models(tiny_data, sequential):
    return {name: sequential(name, tiny_data) for name in NAMES}


def user_features(data, store, users=USERS):
    return store.join({"user_id": tf.constant(data.user_ids[users])})


def pair_features(data, store, users=USERS, items=None):
    items = np.arange(len(users)) * 7 if items is None else items
    return store.join(
        {
            "user_id": tf.constant(data.user_ids[users]),
            "movie_id": tf.constant(data.item_ids[items]),
        }
    )


def first_batch(model, data, batch_size=8, seed=0):
    """The first training batch of the model's own pipeline (which sets its catalogue)."""
    return next(iter(training_dataset(model, data, batch_size=batch_size, seed=seed)))


def states_by_hand(model, batch, by_hand):
    """Backbone states of a training batch from its preprocessed ids, looked up by hand (the
    [MASK] embedding at masked positions)."""
    ids = batch[f"user_tower/{RECENT_MOVIES}"].numpy()
    mask = ids >= 0
    sequence = by_hand.table(model)[np.maximum(ids, 0)] * mask[..., None]
    if model.cloze:
        masked = batch["masked"].numpy()
        sequence[masked] = model.mask_token.numpy()
        mask = mask | masked
    return model.backbone(tf.constant(sequence, tf.float32), tf.constant(mask)).numpy()


def catalogue_by_hand(model, data, by_hand):
    return by_hand.table(model)[by_hand.rows(model, data.item_ids)]


def test_defaults_and_losses():
    assert SEQUENCE_DEFAULTS["loss"] == "softmax" and SEQUENCE_DEFAULTS["history_length"] == 50
    assert LOSSES == ("softmax", "sampled_softmax", "bce", "gbce")
    assert sequence_task("softmax", 9, 4, 0.5).num_sampled == 0
    sampled = sequence_task("sampled_softmax", 9, 4, 0.5)
    assert (sampled.num_sampled, sampled.sampling) == (4, "unigram")
    assert sequence_task("bce", 9, 4, 0.5).calibration == 0.0
    assert sequence_task("gbce", 9, 4, 0.5).calibration == 0.5


@pytest.mark.parametrize("name", NAMES)
def test_histories_and_candidates_share_one_item_table(name, models, tiny_data, store, by_hand):
    model = models[name]
    sequence, item = model.query_tower.sequence, model.candidate_tower.encoder("movie_id")
    assert sequence.embedding is item.embedding and sequence.lookup is item.lookup
    assert model.candidate_tower.field_names == ["movie_id"]
    model(pair_features(tiny_data, store))
    table = item.embedding.embeddings
    assert sum(v is table for v in model.trainable_variables) == 1
    candidates = encode_catalogue(model, store.join({"movie_id": tf.constant(tiny_data.item_ids)}))
    np.testing.assert_allclose(candidates["vector"], catalogue_by_hand(model, tiny_data, by_hand))
    histories = user_features(tiny_data, store)[RECENT_MOVIES].numpy().astype(str)
    short = ["", "", "", "", tiny_data.item_ids[3], tiny_data.item_ids[9]]  # a new user's
    histories = np.concatenate([histories, [short]])
    expected, mask = by_hand.sequence(model, histories)
    out = model.query_tower({RECENT_MOVIES: tf.constant(histories)})
    np.testing.assert_allclose(out["sequence"], expected)
    np.testing.assert_array_equal(out["sequence_mask"], mask)
    assert mask[:, -1].all() and mask.sum() == 5 * 6 + 2  # newest last, padding masked


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_dot_products(name, models, tiny_data, store):
    model = models[name]
    features = pair_features(tiny_data, store)
    logits = model(features, training=False).numpy()  # calling the model builds it
    query = model.encode_query(user_features(tiny_data, store))["vector"].numpy()
    catalogue = encode_catalogue(model, store.join({"movie_id": tf.constant(tiny_data.item_ids)}))
    vectors = catalogue["vector"].numpy()
    full = model.score_all({"vector": tf.constant(query)}, catalogue).numpy()
    np.testing.assert_allclose(full, query @ vectors.T, rtol=1e-5, atol=1e-6)
    items = np.arange(len(USERS)) * 7
    np.testing.assert_allclose(logits, full[np.arange(len(USERS)), items], rtol=1e-5, atol=1e-6)
    pairs = model.score_pairs({"vector": tf.constant(query)}, {"vector": tf.constant(vectors[:5])})
    np.testing.assert_allclose(pairs, (query * vectors[:5]).sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.score(features), logits)  # served score = logit
    assert model.dot_product and model.examples == "sequences"


@pytest.mark.parametrize("name", NAMES)
def test_softmax_loss_by_hand(name, tiny_data, sequential, by_hand):
    model = sequential(name, tiny_data)
    batch = first_batch(model, tiny_data)
    loss = float(model.compute_loss(batch, training=False))
    logits = states_by_hand(model, batch, by_hand) @ catalogue_by_hand(model, tiny_data, by_hand).T
    targets = batch["targets"].numpy()
    where = targets >= 0
    assert 8 <= where.sum() < targets.size  # real targets, none at padding (or unmasked)
    rows = logits[where]
    expected = np.mean(logsumexp(rows, axis=1) - rows[np.arange(len(rows)), targets[where]])
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", ["bce", "gbce"])
@pytest.mark.parametrize("name", NAMES)
def test_negative_sampling_losses_by_hand(name, loss, tiny_data, sequential, by_hand):
    model = sequential(name, tiny_data, loss=loss, loss_negatives=3, calibration=0.5)
    batch = first_batch(model, tiny_data)
    negatives, targets = batch["negatives"].numpy(), batch["targets"].numpy()
    assert negatives.shape == (*targets.shape, 3)
    loss_value = float(model.compute_loss(batch, training=False))
    states = states_by_hand(model, batch, by_hand)
    vectors = catalogue_by_hand(model, tiny_data, by_hand)
    where = targets >= 0
    positive = np.einsum("rd,rd->r", states[where], vectors[targets[where]])
    negative = np.einsum("rd,rkd->rk", states[where], vectors[negatives[where]])
    alpha = 3 / (tiny_data.num_items - 1)
    beta = 1.0 if loss == "bce" else alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha)
    misses = negatives[where] != targets[where][:, None]  # a draw of the target is no negative
    positive, negative = positive - np.log(3), negative - np.log(3)  # the offset: -log(k)
    expected = np.mean(-beta * log_expit(positive) - (log_expit(-negative) * misses).sum(axis=1))
    assert loss_value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_row_logits_agree_between_the_catalogue_and_the_per_row_routes(name, tiny_data, sequential):
    """gBCE's many negatives are scored through one catalogue matmul when the catalogue is
    small; the logits and the item table's gradient must equal the per-row route's."""
    model = sequential(name, tiny_data, loss="gbce", loss_negatives=3)
    batch = first_batch(model, tiny_data)
    where = tf.where(batch["targets"] >= 0)
    items = tf.concat(
        [tf.gather_nd(batch["targets"], where)[:, None], tf.gather_nd(batch["negatives"], where)],
        axis=1,
    )
    results = []
    for whole in (True, False):
        with tf.GradientTape() as tape:
            queries = tf.gather_nd(model.states(batch), where)
            logits = model.row_logits(queries, items, whole_catalogue=whole)
            loss = tf.reduce_sum(logits * tf.range(1.0, 5.0))  # weights tell columns apart
        table = model.candidate_tower.encoder("movie_id").embedding.embeddings
        results.append((logits.numpy(), tf.convert_to_tensor(tape.gradient(loss, table)).numpy()))
    (logits_all, grad_all), (logits_rows, grad_rows) = results
    assert logits_all.shape == (int(tf.shape(where)[0]), 4)
    np.testing.assert_allclose(logits_all, logits_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_all, grad_rows, rtol=1e-4, atol=1e-6)
    assert np.abs(grad_all).max() > 0


@pytest.mark.parametrize("name", NAMES)
def test_sampled_softmax_trains_with_unigram_log_q(name, tiny_data, sequential):
    model = sequential(name, tiny_data, loss="sampled_softmax", loss_negatives=5)
    task = model.task
    assert (task.num_sampled, task.sampling) == (5, "unigram")
    batch = first_batch(model, tiny_data)
    counts = np.maximum(tiny_data.item_counts("train"), 1)
    np.testing.assert_allclose(task.log_probability, np.log(counts / counts.sum()), rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    table = model.candidate_tower.encoder("movie_id").embedding.embeddings
    gradient = tf.convert_to_tensor(tape.gradient(loss, table))
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert np.isfinite(gradient.numpy()).all() and np.abs(gradient.numpy()).max() > 0


@pytest.mark.parametrize("name", NAMES)
def test_l2_penalizes_the_history_embeddings_of_the_batch(name, tiny_data, sequential, by_hand):
    """Regression: l2 was accepted and saved but never reached the loss."""
    model = sequential(name, tiny_data, l2=0.5)
    batch = first_batch(model, tiny_data)
    with_penalty = float(model.compute_loss(batch, training=False))
    model.l2 = 0.0
    without = float(model.compute_loss(batch, training=False))
    ids = batch[f"user_tower/{RECENT_MOVIES}"].numpy()
    looked_up = by_hand.table(model)[np.maximum(ids, 0)] * (ids >= 0)[..., None]
    penalty = 0.5 * np.mean(np.square(looked_up).sum(axis=(1, 2)))
    assert with_penalty - without == pytest.approx(penalty, rel=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_genres_join_the_item_vectors(name, tiny_data, sequential, store, by_hand):
    model = sequential(name, tiny_data, side_features=("movie_genres",))
    assert model.candidate_tower.field_names == ["movie_id", "movie_genres"]
    items = store.join({"movie_id": tf.constant(tiny_data.item_ids)})
    vectors = encode_catalogue(model, items)["vector"].numpy()
    genre = model.candidate_tower.encoder("movie_genres")
    position = {v: i + 1 for i, v in enumerate(genre.vocabulary)}
    genres = tiny_data.items["movie_genres"]
    rows = np.vectorize(lambda g: position.get(str(g), 0))(genres)
    table = genre.embedding.embeddings.numpy()
    real = genres >= 0
    pooled = (table[rows] * real[..., None]).sum(1) / np.maximum(real.sum(1), 1)[:, None]
    expected = catalogue_by_hand(model, tiny_data, by_hand) + pooled
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(pooled).max() > 0
    # Histories still read the shared id table alone.
    histories = user_features(tiny_data, store)[RECENT_MOVIES].numpy()
    out = model.query_tower(user_features(tiny_data, store))
    np.testing.assert_allclose(out["sequence"], by_hand.sequence(model, histories)[0])
    titled = sequential(name, tiny_data, side_features=("movie_title", "movie_genres"))
    assert titled.candidate_tower.field_names == ["movie_id", "movie_title", "movie_genres"]


@pytest.mark.parametrize("name", NAMES)
def test_errors(name, tiny_data, sequential, models):
    with pytest.raises(ValueError, match=r"`loss` must be one of .*Received: loss='hinge'"):
        sequential(name, tiny_data, loss="hinge")
    with pytest.raises(ValueError, match=r"Unknown side features \['movie_year'\]. Received"):
        sequential(name, tiny_data, side_features=("movie_genres", "movie_year"))
    fresh = sequential(name, tiny_data)
    batch = first_batch(models[name], tiny_data)
    with pytest.raises(ValueError, match="set_catalogue"):
        fresh.compute_loss(batch)


def test_towers_must_hold_a_sequence_of_history_length(tiny_data):
    query, candidate = sequence_towers(tiny_data, 8, 5)
    task = sequence_task("softmax", tiny_data.num_items, 1, 0.0)
    with pytest.raises(ValueError, match="keeps 5 positions but history_length is 6"):
        SASRec(query, candidate, 1, 1, 0.1, task=task, history_length=6)
    users = build_tower({"user_id": np.array(["1", "2"])}, [Categorical("user_id")], 8)
    with pytest.raises(ValueError, match=r"needs an item sequence.*Received: fields \['user_id'\]"):
        SASRec(users, candidate, 1, 1, 0.1, task=task, history_length=5)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name, models, tiny_data, store, model_config_roundtrip):
    model = models[name]
    clone = model_config_roundtrip(model, pair_features(tiny_data, store))
    assert (
        clone.query_tower.sequence.embedding is clone.candidate_tower.encoder("movie_id").embedding
    )
    assert clone.get_config()["history_length"] == 6


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])  # all three: test_all_models.py
def test_run_directory_round_trip(name, tiny_data, sequential, tmp_path):
    model = sequential(name, tiny_data, loss="gbce", loss_negatives=2,
                       side_features=("movie_genres",))  # fmt: skip
    model(pair_features(tiny_data, feature_store(tiny_data, "test", 6)))
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # weights far from any initialisation
        variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, tiny_data)
    assert type(loaded) is type(model) and loaded.task.get_config() == model.task.get_config()
    users, items = np.arange(8), np.tile(np.arange(tiny_data.num_items), (8, 1))
    expected = score_fn(model, tiny_data)(users, items)
    np.testing.assert_allclose(score_fn(loaded, tiny_data)(users, items), expected, atol=1e-5)
    assert np.std(expected) > 0.1

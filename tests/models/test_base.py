"""The model contract (tfrec/models/base.py): encodings, scoring paths, losses per objective.

Scoring: `score_all` (default: every pair tiled through `score_pairs`), `score_gathered` and
the factorised `score_all` of DeepFM, FM, GMF, NCF-MLP, NeuMF and Wide&Deep must equal the
whole network run on each (query, candidate) pair of raw features, including with batch norm
and dropout (in inference). Losses: each task objective is recomputed by hand from the model's
own encodings.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.models import DCN, FM, GMF, Recommender, build_model, example_features, take
from tfrec.models.base import encode_catalogue
from tfrec.tasks import CatalogueSoftmax, InBatchSoftmax, RankingTask

from .conftest import randomize

IDS = {"user": ("user_id",), "movie": ("movie_id",)}


def _rows(table, keys, rows):
    return {k: table[k][rows] for k in keys}


def _sides(model, table, users, items):
    """Raw query features of table rows `users`, candidate features of rows `items`."""
    query_keys = model.query_keys + list(getattr(model, "raw_query_keys", ()))
    candidate_keys = model.candidate_keys + list(getattr(model, "raw_candidate_keys", ()))
    return _rows(table, query_keys, users), _rows(table, candidate_keys, items)


def _pairs(query, candidates):
    """Every query row with every candidate row, query-major (row b * N + n)."""
    b, n = len(next(iter(query.values()))), len(next(iter(candidates.values())))
    out = {k: np.repeat(v, n, axis=0) for k, v in query.items()}
    out.update({k: np.concatenate([v] * b, axis=0) for k, v in candidates.items()})
    return out


def _bce(labels, logits):
    x, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def _softmax_loss(logits, targets):
    logits = np.asarray(logits, np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(log_softmax[np.arange(len(targets)), targets]))


# ---------------------------------------------------------------------- scoring paths


@pytest.fixture(scope="module")
def dcn(ranking_table):
    """A DCN (no factorised scorer: the base class's tiling `score_all`) with random weights."""
    from tfrec.features.columns import Categorical, MultiCategorical
    from tfrec.features.towers import build_tower

    user = build_tower(ranking_table, [Categorical("user_id"), Categorical("user_gender")], 2)
    movie = build_tower(
        ranking_table, [Categorical("movie_id"), MultiCategorical("movie_genres", padding="-1")], 2
    )
    model = DCN(user, movie, cross_layers=1, projection_dim=None, dnn_units=(4,), dropout=0.0,
                batch_norm=False, structure="parallel")  # fmt: skip
    model({k: v[:2] for k, v in ranking_table.items() if k != "label"})
    randomize(model, seed=4, scale=0.5)
    return model


def test_default_score_all_tiles_score_pairs(dcn, ranking_table):
    query, candidates = _sides(dcn, ranking_table, np.arange(3), np.arange(10, 14))
    q, c = dcn.encode_query(query), dcn.encode_candidates(candidates)
    everything = dcn.score_all(q, c).numpy()
    assert everything.shape == (3, 4)
    for b in range(3):
        for n in range(4):
            one = dcn.score_pairs(take(q, [b]), take(c, [n])).numpy()
            assert everything[b, n] == pytest.approx(float(one[0]), rel=1e-6, abs=1e-6)
    # The same numbers as the whole model on the joined raw features of each pair.
    np.testing.assert_allclose(
        everything, dcn(_pairs(query, candidates)).numpy().reshape(3, 4), rtol=1e-6, atol=1e-6
    )


def test_score_gathered_picks_each_rows_own_candidates(dcn, ranking_table):
    query, candidates = _sides(dcn, ranking_table, np.arange(3), np.arange(10, 14))
    q, c = dcn.encode_query(query), dcn.encode_candidates(candidates)
    index = np.array([[1, 0], [3, 3], [2, 1]])
    gathered = dcn.score_gathered(q, c, index).numpy()
    expected = np.take_along_axis(dcn.score_all(q, c).numpy(), index, axis=1)
    np.testing.assert_allclose(gathered, expected, rtol=1e-6, atol=1e-6)


def test_take_and_encode_catalogue(dcn, ranking_table):
    encoding = {"a": tf.reshape(tf.range(12.0), [6, 2]), "b": tf.range(6)}
    picked = take(encoding, [4, 0, 4])
    np.testing.assert_array_equal(picked["a"], [[8, 9], [0, 1], [8, 9]])
    np.testing.assert_array_equal(picked["b"], [4, 0, 4])
    _, items = _sides(dcn, ranking_table, [0], np.arange(7))
    whole = dcn.encode_candidates(items)
    chunked = encode_catalogue(dcn, {k: tf.constant(v) for k, v in items.items()}, batch_size=3)
    assert set(chunked) == set(whole)
    for key in whole:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-6)


# Factorised catalogue scorers against the per-pair network, with batch norm and dropout.
FACTORISED = {
    "deepfm": {"dnn_units": [6, 5], "dropout": 0.3, "batch_norm": True},
    "fm": {},
    "gmf": {},
    "ncf_mlp": {"mlp_units": [6, 5], "dropout": 0.3, "batch_norm": True},
    "neumf": {"mlp_embedding_dim": 3, "mlp_units": [6], "dropout": 0.3, "batch_norm": True},
    "wide_deep": {"dnn_units": [6, 5], "dropout": 0.3, "batch_norm": True},
}
PARTS = {"deepfm": "hidden", "fm": "fm", "ncf_mlp": "hidden", "neumf": "hidden",
         "wide_deep": "hidden"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FACTORISED))
def test_factorised_score_all_equals_the_per_pair_network(name, ranking_table):
    model = build_model(name, ranking_table, embedding_dim=3, history_length=4, **FACTORISED[name])
    query, candidates = _sides(model, ranking_table, np.arange(5), np.arange(20, 32))
    model(_pairs(_rows(query, list(query), [0]), _rows(candidates, list(candidates), [0])))
    randomize(model, seed=7, scale=0.5)
    q, c = model.encode_query(query), model.encode_candidates(candidates)
    if name in PARTS:  # the encodings carry the per-side parts the fast path needs
        assert PARTS[name] in q and PARTS[name] in c
    fast = model.score_all(q, c).numpy()
    reference = model(_pairs(query, candidates), training=False).numpy().reshape(5, 12)
    np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
    tiled = Recommender.score_all(model, q, c).numpy()
    np.testing.assert_allclose(tiled, reference, rtol=1e-5, atol=1e-5)
    index = np.random.default_rng(0).integers(0, 12, (5, 4))
    gathered = model.score_gathered(q, c, index).numpy()
    np.testing.assert_allclose(gathered, np.take_along_axis(reference, index, 1), atol=1e-5)
    assert np.std(reference) > 1e-2  # random weights: the check compares distinct numbers


def test_example_features_build_every_registered_model(ranking_table):
    from tfrec.models import available_models, model_defaults

    small = {"embedding_dim": 2, "history_length": 3, "dnn_units": [2], "mlp_units": [2],
             "mlp_embedding_dim": 2, "units": [2], "cross_layers": 1}  # fmt: skip
    for name in available_models():
        defaults = model_defaults(name)
        model = build_model(
            name, ranking_table, **{k: v for k, v in small.items() if k in defaults}
        )
        features = example_features(model)
        assert set(model.query_keys + model.candidate_keys) <= set(features), name
        assert all(int(tf.shape(v)[0]) == 1 for v in features.values()), name
        logits = model(features)
        assert logits.shape == (1,) and np.isfinite(logits.numpy()).all(), name


# ---------------------------------------------------------------------- losses


def _gmf(small_towers, task, l2=0.0):
    model = GMF(*small_towers(3, **IDS), task=task, history_length=0, l2=l2)
    return model


def _batch(table, rows, **extra):
    return {"user_id": table["user_id"][rows], "movie_id": table["movie_id"][rows], **extra}


def _gmf_logits(model, features):
    """[B, N] GMF logits of every batch row's user against every row's movie, by hand."""
    p = model.query_tower(features)["pooled"].numpy()
    q = model.candidate_tower(features)["pooled"].numpy()
    kernel, bias = model.output_layer.get_weights()
    return (p * kernel[:, 0]) @ q.T + bias[0]


def test_penalty_by_hand(small_towers, ranking_table):
    model = FM(*small_towers(3), task="ranking", history_length=0, l2=0.01)
    features = _batch(ranking_table, np.arange(6), user_gender=ranking_table["user_gender"][:6],
                      movie_genres=ranking_table["movie_genres"][:6])  # fmt: skip
    model(features)
    randomize(model, seed=2)
    q, c = model.encode_query(features), model.encode_candidates(features)
    expected = 0.0
    for encoding in (q, c):
        e = encoding["embeddings"].numpy()  # [B, F, k]
        expected += (e**2).sum(axis=(1, 2)).mean()
    assert float(model.penalty(q, c)) == pytest.approx(0.01 * expected, rel=1e-5)
    assert float(model.penalty({"vector": tf.ones([2, 3])})) == 0.0  # no field embeddings


def test_pointwise_loss_is_bce_plus_penalty(small_towers, ranking_table):
    model = _gmf(small_towers, RankingTask(metrics=False), l2=0.05)
    rows = np.arange(8)
    labels = ranking_table["label"][rows]
    features = _batch(ranking_table, rows, label=labels)
    model(features)
    randomize(model, seed=3)
    logits = np.diag(_gmf_logits(model, features))
    embeddings = [model.query_tower(features), model.candidate_tower(features)]
    penalty = sum((t["embeddings"].numpy() ** 2).sum(axis=(1, 2)).mean() for t in embeddings)
    expected = _bce(labels, logits) + 0.05 * penalty
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("mixed", [True, False])
def test_in_batch_loss_by_hand(small_towers, ranking_table, mixed):
    task = InBatchSoftmax(logq="none", mixed_negatives=mixed, remove_accidental_hits=False)
    model = _gmf(small_towers, task)
    rows = np.arange(5)
    label = np.array([1, 0, 1, 1, 0], np.float32)
    features = _batch(ranking_table, rows, label=label)
    model(features)
    randomize(model, seed=5)
    logits = _gmf_logits(model, features)
    positive = np.flatnonzero(label)
    # Rows: positives. Columns: positives' items, then (mixed) the label-0 rows' items.
    columns = np.concatenate([positive, np.flatnonzero(label == 0)]) if mixed else positive
    expected = _softmax_loss(logits[np.ix_(positive, columns)], np.arange(positive.size))
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-5)


def _catalogue_model(small_towers, ranking_table, task):
    model = _gmf(small_towers, task)
    vocabulary = model.candidate_tower.encoder("movie_id").vocabulary
    catalogue = {"movie_id": tf.constant(vocabulary)}
    targets = np.array([3, 0, 7, 3])
    features = {
        "user_id": ranking_table["user_id"][:4],
        "movie_id": np.asarray(vocabulary)[targets],
        "movie_index": targets,
    }
    model(features)
    randomize(model, seed=6)
    return model, catalogue, features, targets


def test_full_catalogue_loss_by_hand(small_towers, ranking_table):
    task = CatalogueSoftmax(num_items=60)
    model, catalogue, features, targets = _catalogue_model(small_towers, ranking_table, task)
    with pytest.raises(ValueError, match="set_catalogue"):
        model.compute_loss(features)
    model.set_catalogue(catalogue)
    q = model.query_tower(features)["pooled"].numpy()
    items = model.candidate_tower(catalogue)["pooled"].numpy()
    kernel, bias = model.output_layer.get_weights()
    logits = (q * kernel[:, 0]) @ items.T + bias[0]  # [4, 60]
    expected = _softmax_loss(logits, targets)
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-5)


def test_sampled_catalogue_loss_by_hand(small_towers, ranking_table):
    task = CatalogueSoftmax(num_items=60, num_sampled=6)
    model, catalogue, features, targets = _catalogue_model(small_towers, ranking_table, task)
    model.set_catalogue(catalogue)
    drawn = []
    candidates = task.candidates

    def spy(targets, seed=None):
        out = candidates(targets, seed)
        drawn.append(out)
        return out

    task.candidates = spy
    loss = float(model.compute_loss(features))
    items, columns, log_q = (np.asarray(t) for t in drawn[0])
    np.testing.assert_array_equal(items[:4], targets)
    np.testing.assert_array_equal(columns, np.arange(4))
    # log Q = log(num_sampled) + log p(item), uniform: log(6 / 60).
    np.testing.assert_allclose(log_q, np.log(6 / 60), rtol=1e-5)
    q = model.query_tower(features)["pooled"].numpy()
    v = model.candidate_tower({"movie_id": tf.gather(catalogue["movie_id"], items)})["pooled"]
    kernel, bias = model.output_layer.get_weights()
    logits = (q * kernel[:, 0]) @ v.numpy().T + bias[0] - log_q
    same = (items[None, :] == items[columns][:, None]) & ~np.eye(4, items.size, dtype=bool)
    logits[same] = -1e9  # a candidate equal to the row's target is not a negative
    assert same[0, 3] and same[3, 0]  # rows 0 and 3 share target 3
    assert loss == pytest.approx(_softmax_loss(logits, columns), rel=1e-5)


def test_missing_label_and_unknown_objective_are_clear_errors(small_towers, ranking_table):
    model = _gmf(small_towers, "ranking")
    features = _batch(ranking_table, np.arange(3))
    with pytest.raises(KeyError, match="'label'.*Received keys"):
        model.compute_loss(features)

    class Pairwise(tf.keras.layers.Layer):
        objective = "pairwise"

    odd = _gmf(small_towers, Pairwise())
    with pytest.raises(ValueError, match="Received: objective='pairwise'"):
        odd.compute_loss(features)


def test_constructor_arguments_are_checked(small_towers):
    user, movie = small_towers(3, **IDS)
    with pytest.raises(TypeError, match="Received: query_tower=str"):
        GMF("user", movie, task="ranking", history_length=0, l2=0.0)
    with pytest.raises(ValueError, match="Received: l2=-1"):
        GMF(user, movie, task="ranking", history_length=0, l2=-1.0)
    with pytest.raises(ValueError, match="Received: history_length=-2"):
        GMF(user, movie, task="ranking", history_length=-2, l2=0.0)
    with pytest.raises(ValueError, match="Received: task='softmax'"):
        GMF(user, movie, task="softmax", history_length=0, l2=0.0)


# ---------------------------------------------------------------------- training


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_fit_traces_the_train_step_once(small_towers, ranking_table, monkeypatch,
                                        steps_per_execution):  # fmt: skip
    """The optimizer's slots exist before Keras traces the train function, so `tf.function`
    traces it once (twice if its first trace had to create them), and training still works."""
    model = _gmf(small_towers, RankingTask(metrics=False))
    features = _batch(ranking_table, np.arange(64), label=ranking_table["label"][:64])
    model(features)
    traces = []
    original = Recommender.train_step

    def counted(self, inputs):
        traces.append(1)
        return original(self, inputs)

    monkeypatch.setattr(Recommender, "train_step", counted)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05),
                  steps_per_execution=steps_per_execution)  # fmt: skip
    dataset = tf.data.Dataset.from_tensor_slices(features).batch(16).repeat()
    before = model.get_weights()
    model.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0)
    # The multi-step loop traces its body once more for the outputs' structure (Keras' own).
    assert len(traces) == (1 if steps_per_execution == 1 else 2)
    assert len(model.optimizer.variables) == 1 + 2 * len(model.trainable_variables)
    assert int(model.optimizer.iterations) == 6
    changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert any(changed)

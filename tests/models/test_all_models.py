"""Every registered model, through the same paths: build, fit, evaluate, export, serve.

This is the model contract's test: a model added to the registry is covered here without a
line of test code. For each model, on a small generated MovieLens:

* build with small settings and fit one epoch (the loss is finite);
* evaluate both protocols through `tfrec.evaluation.evaluate_model`;
* the factorised catalogue scorer (`score_all` on cached encodings) equals the reference path
  (the whole network on each (user, item) pair of raw features joined by id) to 1e-5, and so
  does `score_gathered` (sampled ranking's path);
* the model saves to and loads from a run directory (config + weights, trusted classes only);
* a held-out export (``as_of="test"``) is reloaded in a process that never imports tfrec, and
  its ``recommend`` never returns a seen item and agrees with the library's own full-ranking
  evaluation on the test split (same top-10 scores, same HR@10).
"""

import tfrec  # noqa: F401  # isort: skip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.evaluation import evaluate_model, score_fn
from tfrec.features.inputs import feature_store
from tfrec.models import available_models, build_model, model_defaults, ungroup
from tfrec.serving import export_model
from tfrec.training import fit, training_dataset
from tfrec.workflow import load_model, save_model

"""Small settings for whichever hyperparameters a model has (fast to train and export)."""

K = 10
MODELS = available_models()
POINTWISE = [name for name in MODELS if model_defaults(name).get("task") == "ranking"]


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(num_users=50, num_movies=70, ratings_per_user=12, seed=1)
    return SplitData.from_movielens(ml)


@pytest.fixture(scope="module")
def trained(data, small):
    """Every registered model, fit for one epoch: ``{name: (model, history)}``."""
    out = {}
    for name in MODELS:
        model = build_model(name, data, **small(name))
        history = fit(model, data, epochs=1, batch_size=256, num_negatives=2, verbose=0)
        out[name] = (model, history.history)
    return out


@pytest.fixture(scope="module")
def exports(trained, data, tmp_path_factory):
    """Held-out exports (as of test) of every model, and what a tfrec-free process serves."""
    base = tmp_path_factory.mktemp("exports")
    paths = {
        name: str(export_model(model, data, as_of="test", base_dir=base, name=name, warmup=False))
        for name, (model, _) in trained.items()
    }
    users = [str(u) for u in data.user_ids]
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        paths, users, k = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
        out = {}
        for name, path in paths.items():
            sigs = tf.saved_model.load(path).signatures
            top = sigs["recommend"](user_id=tf.constant(users), k=tf.constant(k))
            pair = sigs["serving_default"](
                user_id=tf.constant(users[:3]), movie_id=tf.constant(["1", "2", "3"])
            )
            out[name] = {
                "movie_ids": [[v.decode() for v in row] for row in top["movie_ids"].numpy()],
                "scores": top["scores"].numpy().tolist(),
                "pair_scores": pair["score"].numpy().tolist(),
            }
        out["tfrec_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "tfrec")
        print("RESULT" + json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths), json.dumps(users), str(K)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(base),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.parametrize("name", MODELS)
def test_fits_and_evaluates_under_both_protocols(name, trained, data):
    model, history = trained[name]
    assert np.isfinite(history["loss"]).all()
    assert "val_full_ndcg@10" in history
    metrics = evaluate_model(model, data, "test")
    for key in ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10", "full_mrr"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["sampled_hr@10"] >= metrics["full_hr@10"]  # 100 candidates vs all 70 - seen


@pytest.mark.parametrize("name", MODELS)
def test_fast_scoring_equals_the_per_pair_reference(name, trained, data):
    model, _ = trained[name]
    users = np.arange(6)
    scorer = score_fn(model, data, "test")
    fast = scorer(users, np.tile(np.arange(data.num_items), (users.size, 1)))
    store = feature_store(data, "test", model.history_length)
    pairs = store.join(
        {
            "user_id": tf.constant(np.repeat(data.user_ids[users], data.num_items)),
            "movie_id": tf.constant(np.tile(data.item_ids, users.size)),
        }
    )
    reference = model(pairs, training=False).numpy().reshape(users.size, data.num_items)
    np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
    picked = np.random.default_rng(0).integers(0, data.num_items, (users.size, 7))
    gathered = scorer(users, picked)
    np.testing.assert_allclose(gathered, np.take_along_axis(reference, picked, 1), atol=1e-5)


@pytest.mark.parametrize("name", POINTWISE)
def test_a_grouped_training_batch_gives_the_loss_and_gradients_of_its_pairs(name, trained, data):
    """Pointwise batches are grouped by positive (`score_grouped`: the model's own factorised
    form, or the query repeated for `score_pairs`); the same batch as one row per pair must
    give the same loss and gradients (inference mode, so dropout cannot differ)."""
    model, _ = trained[name]
    batch = next(iter(training_dataset(model, data, num_negatives=3, batch_size=48, seed=5)))
    results = []
    for features in (batch, ungroup(batch)):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(features, training=False)
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
    (loss, grads), (flat_loss, flat_grads) = results
    assert np.isfinite(loss) and loss == pytest.approx(flat_loss, rel=1e-5)
    for variable, got, expected in zip(model.trainable_variables, grads, flat_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=variable.name)


@pytest.mark.parametrize("name", MODELS)
def test_run_directory_round_trip(name, trained, data, tmp_path):
    model, _ = trained[name]
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, data)
    assert type(loaded) is type(model)
    users, items = np.arange(4), np.tile(np.arange(data.num_items), (4, 1))
    np.testing.assert_allclose(
        score_fn(loaded, data)(users, items), score_fn(model, data)(users, items), atol=1e-6
    )


def test_exports_load_without_tfrec(exports):
    assert exports["tfrec_imported"] == []
    for name in MODELS:
        assert np.isfinite(exports[name]["pair_scores"]).all(), name


@pytest.mark.parametrize("name", MODELS)
def test_recommend_agrees_with_full_ranking_and_skips_seen(name, trained, data, exports):
    model, _ = trained[name]
    served = exports[name]
    ids = np.asarray(served["movie_ids"])
    seen = data.seen("test")
    index = {movie: i for i, movie in enumerate(data.item_ids)}
    returned = np.vectorize(lambda m: index.get(m, -1))(ids)
    assert (returned >= 0).all(), "every test user has more than k unseen movies"
    users = np.arange(data.num_users)
    assert not seen.contains(users, returned).any(), "recommend returned a seen movie"

    scores = score_fn(model, data, "test", logits=False)(
        users, np.tile(np.arange(data.num_items), (users.size, 1))
    )
    scores[seen.dense_mask(users)] = -np.inf
    expected = -np.sort(-scores, axis=1)[:, :K]
    np.testing.assert_allclose(served["scores"], expected, rtol=1e-4, atol=1e-5)

    test_users, targets = data.targets("test")
    hits = (returned[test_users] == targets[:, None]).any(axis=1).mean()
    full = evaluate_model(model, data, "test", protocols=("full",))["full_hr@10"]
    assert abs(hits - full) <= 1.0 / len(test_users) + 1e-9  # a tie at rank 10 may differ

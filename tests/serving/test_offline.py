"""Judging exports (tfrec/serving/offline.py): a held-out export's own signatures reproduce the
library's evaluator, and two exports are compared on the same users with paired intervals.

Uses the serving fixtures (a small DeepFM on generated MovieLens, tests/serving/conftest.py)
plus held-out exports (``as_of="test"``) of it and of a GMF.
"""

import tfrec  # noqa: F401  # isort: skip
import numpy as np
import pytest
import tensorflow as tf

from tfrec.evaluation import evaluate_model, rank_of_targets, score_fn
from tfrec.models import build_model
from tfrec.serving import ServedExport, compare_exports, evaluate_export, export_model
from tfrec.training import training_dataset

KS = (5, 10)


@pytest.fixture(scope="module")
def heldout(model, data, tmp_path_factory):
    """Held-out exports (as of test) of the DeepFM fixture and of a one-epoch GMF."""
    base = tmp_path_factory.mktemp("heldout")
    gmf = build_model("gmf", data, embedding_dim=8, history_length=0)
    gmf.compile(tf.keras.optimizers.Adam(1e-2), run_eagerly=True)
    gmf.fit(training_dataset(gmf, data, num_negatives=1, batch_size=1024), epochs=1, verbose=0)
    return {
        "deepfm": export_model(model, data, as_of="test", base_dir=base, name="a", warmup=False),
        "gmf": export_model(gmf, data, as_of="test", base_dir=base, name="b", warmup=False),
    }


def library_ranks(model, data):
    """Full-ranking ranks of the test targets as the evaluator computes them, and whether
    each target's logit is tied with another candidate's."""
    users, targets = data.targets("test")
    items = np.tile(np.arange(data.num_items), (users.size, 1))
    scores = score_fn(model, data, "test")(users, items)
    mask = data.seen("test").dense_mask(users)
    target_scores = scores[np.arange(users.size), targets]
    tied = ((scores == target_scores[:, None]) & ~mask).sum(axis=1) > 1
    return rank_of_targets(scores, targets, mask), tied


def test_heldout_export_reproduces_the_evaluator(model, data, heldout):
    judged = evaluate_export(heldout["deepfm"], data, "test", ks=KS)
    expected = evaluate_model(model, data, "test", ks=KS)
    ranks, tied = library_ranks(model, data)
    untied = ~tied
    assert untied.mean() > 0.9
    np.testing.assert_array_equal(judged.ranks["full"][untied], ranks[untied])
    rows = len(ranks)
    assert set(judged.metrics) == set(expected)
    for name, value in expected.items():  # a tie may move a row: at most 1 / rows per metric
        assert judged.metrics[name] == pytest.approx(value, abs=tied.sum() / rows + 1e-9), name
    assert judged.depth == data.num_items and not judged.truncated and judged.unranked == 0
    assert judged.users.tolist() == data.targets("test")[0].tolist()


def test_truncated_lists_keep_metrics_at_k_and_truncate_mrr(data, heldout):
    whole = evaluate_export(heldout["deepfm"], data, "test", ks=KS, protocols=("full",))
    short = evaluate_export(heldout["deepfm"], data, "test", ks=KS, protocols=("full",), depth=10)
    assert short.truncated and short.depth == 10
    for k in KS:
        assert short.metrics[f"full_hr@{k}"] == whole.metrics[f"full_hr@{k}"]
        assert short.metrics[f"full_ndcg@{k}"] == whole.metrics[f"full_ndcg@{k}"]
    assert "full_mrr" not in short.metrics
    truncated = np.where(whole.ranks["full"] < 10, 1.0 / (whole.ranks["full"] + 1.0), 0.0)
    assert short.metrics["full_mrr@10"] == pytest.approx(truncated.mean())
    with pytest.raises(ValueError, match="depth"):
        evaluate_export(heldout["deepfm"], data, "test", ks=KS, depth=5)
    with pytest.raises(ValueError, match="protocols"):
        evaluate_export(heldout["deepfm"], data, "test", protocols=("pointwise",))


def test_an_export_that_knows_the_targets_is_flagged(data, exports):
    with pytest.warns(UserWarning, match="as_of='all'"):
        judged = evaluate_export(exports.popular, data, "test", protocols=("full",))
    # It counts every test target as seen: never recommended, a miss at every k.
    assert judged.unranked == len(judged.users)
    assert judged.metrics["full_hr@10"] == 0.0


def test_served_export_lists_its_users(data, heldout):
    served = ServedExport(heldout["deepfm"])
    assert served.as_of == "test" and served.catalogue_size == data.num_items
    assert sorted(served.users()) == sorted(data.user_ids)


def test_compare_two_exports_on_the_same_users(data, heldout):
    comparison = compare_exports(heldout["deepfm"], heldout["gmf"], data, ks=(10,), reps=400)
    a = evaluate_export(heldout["deepfm"], data, ks=(10,))
    assert comparison.a.metrics == a.metrics
    for name, diff in comparison.differences.items():
        assert diff.difference == pytest.approx(comparison.b.metrics[name] - a.metrics[name])
        assert diff.low <= diff.difference <= diff.high or diff.low == diff.high
    table = comparison.table()
    assert table.splitlines()[0].startswith("metric") and "full_ndcg@10" in table
    itself = compare_exports(heldout["gmf"], heldout["gmf"], data, ks=(10,), reps=100)
    for diff in itself.differences.values():
        assert (diff.low, diff.difference, diff.high) == (0.0, 0.0, 0.0)
        assert diff.verdict == "no difference"

"""Tests for tfrec.plotting: figures from Keras histories and metric rows, metric tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfrec.models import TRAIN_DEFAULTS  # noqa: E402
from tfrec.plotting import MetricTable, plot_comparison, plot_history, plot_tradeoff  # noqa: E402
from tfrec.workflow import HEADLINE  # noqa: E402


class FakeHistory:
    """Stands in for tf.keras.callbacks.History: only `.history` is read."""

    history = {"loss": [0.7, 0.5, 0.45], "val_full_ndcg@10": [0.02, 0.05, 0.04]}


def test_plot_history_one_panel_per_metric_and_marks_best_epoch():
    fig = plot_history(FakeHistory(), ("loss", "val_full_ndcg@10"))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["loss", "val_full_ndcg@10"]
    x, y = axes[0].lines[0].get_data()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(y, [0.7, 0.5, 0.45])
    # best = lowest loss (epoch 3), highest NDCG (epoch 2)
    np.testing.assert_allclose(axes[0].collections[0].get_offsets(), [[3, 0.45]])
    np.testing.assert_allclose(axes[1].collections[0].get_offsets(), [[2, 0.05]])
    plt.close(fig)


def test_plot_history_accepts_dict_and_names_missing_metric():
    fig = plot_history({"loss": [1.0, 0.5]}, ("loss",))
    plt.close(fig)
    with pytest.raises(KeyError, match="val_auc"):
        plot_history({"loss": [1.0]}, ("loss", "val_auc"))
    with pytest.raises(ValueError, match="Keras History"):
        plot_history({}, ("loss",))


def test_plot_comparison_bar_heights():
    rows = {"a": {"hr": 0.2, "ndcg": 0.1}, "b": {"hr": 0.3, "ndcg": 0.15}}
    fig = plot_comparison(rows, ("hr", "ndcg"))
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [0.1, 0.15, 0.2, 0.3]
    plt.close(fig)
    with pytest.raises(KeyError, match="'b'"):
        plot_comparison({"a": {"hr": 0.2}, "b": {}}, ("hr",))


def test_default_metrics_are_the_names_tfrec_logs():
    # Evaluation rows are keyed "<protocol>_<metric>", Keras logs add "val_"; fit monitors
    # val_full_ndcg@10 by default. The defaults plot exactly those names.
    rows = {"deepfm": dict.fromkeys(HEADLINE, 0.3), "popularity": dict.fromkeys(HEADLINE, 0.1)}
    fig = plot_comparison(rows)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["full_hr@10", "full_ndcg@10"]
    plt.close(fig)
    history = {"loss": [0.7, 0.6], TRAIN_DEFAULTS["monitor"]: [0.01, 0.02]}
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "val_full_ndcg@10"]
    plt.close(fig)


def test_plot_tradeoff_points_and_labels():
    points = {"exact": {"ms": 2.0, "recall": 1.0}, "ivf": {"ms": 0.5, "recall": 0.9}}
    fig = plot_tradeoff(points, x="ms", y="recall")
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(offsets, [[2.0, 1.0], [0.5, 0.9]])
    assert [t.get_text() for t in ax.texts] == ["exact", "ivf"]
    plt.close(fig)
    with pytest.raises(KeyError, match="recall"):
        plot_tradeoff({"p": {"ms": 1.0}}, x="ms", y="recall")


def test_metric_table_text_and_html():
    table = MetricTable({"m": {"hr": 0.12345, "epochs": 3}, "pop": {"hr": 0.1}}, digits=3)
    text = str(table)
    assert text.splitlines()[0].split() == ["model", "hr", "epochs"]
    assert "0.123" in text and text.splitlines()[-1].split() == ["pop", "0.100", "-"]
    html = table._repr_html_()
    assert "<td>0.123</td><td>3</td>" in html and "<td>-</td>" in html
    kept = MetricTable({"m": {"a": 1.0, "b": 2.0}}, columns=["b"])
    assert str(kept).splitlines()[0].split() == ["model", "b"]
    with pytest.raises(ValueError, match="non-empty"):
        MetricTable({})

"""Small matplotlib and display helpers for the tutorial notebooks.

They exist so that every chapter shows training curves, model comparisons and metric tables
the same way, with a few lines of notebook code instead of repeated plotting boilerplate.
matplotlib is a development dependency (``pip install -e .[dev]``), imported only when a
plotting function is called, so ``import tfrec.plotting`` never fails.
"""

from __future__ import annotations

import html

import numpy as np

from tfrec.evaluation import format_table


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tfrec.plotting needs matplotlib. Fix: pip install -e '.[dev]' (or matplotlib)."
        ) from error
    return plt


def _history_dict(history) -> dict:
    """The per-epoch logs of a Keras History, or a plain ``{name: [values]}`` dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(
            "history must be a Keras History or a non-empty dict of metric -> per-epoch values. "
            f"Received: history={type(history).__name__}"
        )
    return logs


def plot_history(history, metrics=("loss", "val_full_ndcg@10"), title=None):
    """One panel per metric of a Keras History, against the epoch (1-based).

    Exists because a ranking model's loss and its validation ranking metric can disagree
    (the loss keeps falling while NDCG peaks), and seeing both side by side is how one
    judges early stopping.

    Args:
      history: The History `model.fit` (or `tfrec.training.fit`) returned, or its
        ``.history`` dict.
      metrics: Names of the logged metrics to plot, one panel each.
      title: Optional figure title.

    Returns:
      The matplotlib Figure.
    """
    logs = _history_dict(history)
    missing = [m for m in metrics if m not in logs]
    if missing:
        raise KeyError(
            f"The history has no metric {missing}. Received: metrics={list(metrics)}; logged: "
            f"{sorted(logs)}. Fix: pick logged names (validation metrics start with 'val_')."
        )
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, name in zip(axes[0], metrics, strict=True):
        values = np.asarray(logs[name], dtype=float)
        epochs = np.arange(1, values.size + 1)
        ax.plot(epochs, values, marker="o")
        best = int(np.argmin(values) if "loss" in name else np.argmax(values))
        ax.scatter([epochs[best]], [values[best]], s=80, facecolors="none", edgecolors="red")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_comparison(rows: dict, metrics=("full_hr@10", "full_ndcg@10"), title=None):
    """Grouped bar chart: one group per metric, one bar per model (row).

    Exists so each chapter can compare its model family at a glance next to the table.

    Args:
      rows: ``{model name: {metric: value}}``, e.g. `tfrec.workflow.train_model` metrics.
      metrics: Metric names to show; every row must have them.
      title: Optional axes title.

    Returns:
      The matplotlib Figure.
    """
    if not isinstance(rows, dict) or not rows:
        raise ValueError(f"rows must be a non-empty dict of model -> metrics. Received: {rows!r}")
    for name, values in rows.items():
        missing = [m for m in metrics if m not in values]
        if missing:
            raise KeyError(
                f"Row {name!r} has no metric {missing}. Received: metrics={list(metrics)}; "
                f"the row has {sorted(values)}."
            )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) * len(metrics)), 3.5))
    width = 0.8 / len(rows)
    positions = np.arange(len(metrics))
    for i, (name, values) in enumerate(rows.items()):
        heights = [float(values[m]) for m in metrics]
        ax.bar(positions + (i - (len(rows) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(positions)
    ax.set_xticklabels(metrics)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_tradeoff(points: dict, x="ms/query", y="recall@10", title=None):
    """Scatter of labelled points, e.g. each index setting's recall against its query time.

    Exists for the speed/quality trade-off plots (approximate indexes), where every point
    needs its label (the setting) next to it.

    Args:
      points: ``{label: {x: value, y: value, ...}}``.
      x: Key of the horizontal value.
      y: Key of the vertical value.
      title: Optional axes title.

    Returns:
      The matplotlib Figure.
    """
    if not isinstance(points, dict) or not points:
        raise ValueError(
            f"points must be a non-empty dict of label -> values. Received: {points!r}"
        )
    for label, values in points.items():
        if x not in values or y not in values:
            raise KeyError(
                f"Point {label!r} needs both {x!r} and {y!r}. Received keys: {sorted(values)}"
            )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in points.items():
        ax.scatter(float(values[x]), float(values[y]))
        ax.annotate(str(label), (float(values[x]), float(values[y])), fontsize="small")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


class MetricTable:
    """A metric table that prints as aligned text and renders as HTML in a notebook.

    Exists so notebooks display `tfrec.evaluation.format_table` results as a proper table
    (Jupyter calls `_repr_html_`) while scripts and tests still get the plain text.

    Args:
      rows: ``{model name: {metric: value}}``.
      columns: Optional metric names to keep, in order (default: all, first-seen order).
      digits: Decimals of float values.

    Example:
      >>> MetricTable({"popularity": {"full_hr@10": 0.05}})   # last expression in a cell
    """

    def __init__(self, rows: dict, columns=None, digits: int = 4):
        if not isinstance(rows, dict) or not rows:
            raise ValueError(
                f"rows must be a non-empty dict of model -> metrics. Received: rows={rows!r}"
            )
        if columns is not None:
            rows = {name: {c: m[c] for c in columns if c in m} for name, m in rows.items()}
        self.rows = rows
        self.digits = int(digits)

    def __str__(self) -> str:
        return format_table(self.rows, digits=self.digits)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        columns = []
        for metrics in self.rows.values():
            columns.extend(k for k in metrics if k not in columns)

        def cell(value):
            if isinstance(value, float | np.floating):
                return f"{value:.{self.digits}f}"
            return html.escape(str(value))

        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["model", *columns])
        body = "".join(
            "<tr><td>"
            + html.escape(str(name))
            + "</td>"
            + "".join(f"<td>{cell(m[c]) if c in m else '-'}</td>" for c in columns)
            + "</tr>"
            for name, m in self.rows.items()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

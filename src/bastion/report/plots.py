"""Charts as inline figures (matplotlib, Agg backend, PNG base64). matplotlib is imported lazily."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from bastion.errors import DependencyMissing
from bastion.report.document import Figure


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the audit extra
        raise DependencyMissing(
            "matplotlib is not installed", hint="pip install 'bastion-ml[audit]'"
        ) from exc
    return plt


def _finish(plt: Any, fig: Any, title: str, caption: str) -> Figure:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return Figure(
        title=title,
        data_uri="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
        caption=caption,
    )


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    diagonal: bool = False,
    caption: str = "",
) -> Figure:
    """One line per series (``name -> (xs, ys)``); ``diagonal`` draws y = x (chance on a ROC)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o" if len(xs) <= 12 else None, label=name)
    if diagonal:
        lo = 1e-4 if logx else 0.0
        ax.plot([lo, 1], [lo, 1], linestyle="--", color="grey", label="chance")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(plt, fig, title, caption)


def histogram(
    groups: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 40, caption: str = ""
) -> Figure:
    """Overlaid histograms (e.g. detector scores of clean vs poisoned rows)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, values in groups.items():
        if len(values):
            ax.hist(list(values), bins=bins, alpha=0.55, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return _finish(plt, fig, title, caption)


def bar_chart(values: Mapping[str, float], *, title: str, ylabel: str, caption: str = "") -> Figure:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar(list(values), list(values.values()))
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    return _finish(plt, fig, title, caption)


__all__ = ["bar_chart", "histogram", "line_chart"]

"""Server-rendered SVG for the dashboard: the lineage graph, bar charts and line charts.

Every string that reaches the markup goes through :func:`html.escape` (names, labels and titles are
attacker-controlled: a model name is whatever its pusher typed). The SVG carries ``role="img"``, a
``<title>`` and an ``aria-label``, so a screen reader announces what it shows; the same figures are always
also in a table on the page. No scripts, no external references, presentation attributes only (the
dashboard's Content-Security-Policy allows no inline ``style``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

_PALETTE = ("#0550ae", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#116329")
_FONT = 'font-family="system-ui,sans-serif" font-size="12"'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str, n: int = 38) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_FONT}>'
        f"<title>{_e(title)}</title>"
    )


def lineage_svg(graph: Any, *, title: str) -> Markup:
    """A left-to-right graph: sources on the left, the root on the right; runs as boxes, datasets as pills.

    ``graph`` is a :class:`bastion.store.lineage.LineageGraph`."""
    events = list(graph.events)
    # Columns by depth from the root: the root at depth 0, its producing runs at 1, their inputs at 2, ...
    depth: dict[tuple[str, str], int] = {("ds", f"{graph.root.namespace}\x00{graph.root.name}"): 0}
    labels: dict[tuple[str, str], str] = {
        ("ds", f"{graph.root.namespace}\x00{graph.root.name}"): graph.root.name
    }
    edges: list[tuple[tuple[str, str], tuple[str, str]]] = []
    frontier = [graph.root]
    seen_runs: set[str] = set()
    level = 0
    while frontier and level < 60:
        nxt = []
        for ds in frontier:
            node = ("ds", f"{ds.namespace}\x00{ds.name}")
            for ev in graph.producers(ds):
                run = ("run", ev.run_id)
                edges.append((run, node))
                if ev.run_id in seen_runs:
                    continue
                seen_runs.add(ev.run_id)
                depth[run] = max(depth.get(run, 0), depth[node] + 1)
                labels[run] = f"{ev.job_name} ({ev.event_time:%Y-%m-%d %H:%M})"
                for inp in ev.inputs:
                    key = ("ds", f"{inp.namespace}\x00{inp.name}")
                    edges.append((key, run))
                    if key not in depth:
                        depth[key] = depth[run] + 1
                        labels[key] = inp.name
                        nxt.append(inp)
        frontier = nxt
        level += 1
    for ev in events:  # runs not reached by name (content-addressed producers): still drawn
        run = ("run", ev.run_id)
        if run not in depth:
            depth[run] = 1
            labels[run] = ev.job_name
    max_depth = max(depth.values(), default=0)
    columns: dict[int, list[tuple[str, str]]] = {}
    for node, d in depth.items():
        columns.setdefault(max_depth - d, []).append(node)
    col_w, row_h, box_w, box_h = 250, 56, 220, 34
    rows = max((len(v) for v in columns.values()), default=1)
    width, height = col_w * (max_depth + 1) + 20, row_h * rows + 30
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for col, nodes in columns.items():
        for i, node in enumerate(sorted(nodes, key=lambda n: labels.get(n, ""))):
            pos[node] = (10 + col * col_w, 20 + i * row_h)
    parts = [_open(width, height, title)]
    parts.append(
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>'
    )
    for src, dst in dict.fromkeys(edges):
        if src in pos and dst in pos:
            x1, y1 = pos[src][0] + box_w, pos[src][1] + box_h / 2
            x2, y2 = pos[dst][0], pos[dst][1] + box_h / 2
            parts.append(
                f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#57606a" '
                'stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    for node, (x, y) in pos.items():
        kind = node[0]
        label = labels.get(node, "")
        shown = _short(label if kind == "run" else label.rsplit("/", 1)[-1] or label, 32)
        fill, stroke, rx = ("#ddf4ff", "#0550ae", 4) if kind == "run" else ("#f6f8fa", "#57606a", 16)
        parts.append(
            f"<g><title>{_e(('run: ' if kind == 'run' else 'dataset: ') + label)}</title>"
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="{rx}" fill="{fill}" '
            f'stroke="{stroke}"/><text x="{x + 8}" y="{y + 21}" fill="#1f2328">{_e(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above


def bar_svg(
    values: Mapping[str, float],
    *,
    title: str,
    limit: float | None = None,
    limit_label: str = "threshold",
    upper: float | None = None,
) -> Markup:
    """Horizontal bars (one per key) with an optional threshold line."""
    items = [(k, float(v)) for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)]
    top = upper if upper is not None else max([v for _, v in items] + [limit or 0.0, 1e-9])
    label_w, bar_w, row_h = 230, 360, 24
    width, height = label_w + bar_w + 80, row_h * len(items) + 40
    parts = [_open(width, height, title)]
    for i, (key, v) in enumerate(items):
        y = 10 + i * row_h
        w = max(0.0, min(v / top, 1.0)) * bar_w if top > 0 else 0.0
        colour = _PALETTE[0] if limit is None or v <= limit else "#cf222e"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" fill="#1f2328">'
            f"{_e(_short(key, 32))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}" fill="#1f2328">{v:.4g}</text>'
        )
    if limit is not None and top > 0:
        x = label_w + min(limit / top, 1.0) * bar_w
        parts.append(
            f'<line x1="{x:.1f}" y1="5" x2="{x:.1f}" y2="{height - 22}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="{height - 8}" text-anchor="middle" '
            f'fill="#a40e26">{_e(limit_label)} {limit:.4g}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above


def line_svg(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
) -> Markup:
    """Line chart of one or more (x, y) series, with axes, ticks and a legend."""
    pts = {
        k: [
            (float(x), float(y))
            for x, y in v
            if math.isfinite(x) and math.isfinite(y) and (x > 0 or not logx)
        ]
        for k, v in series.items()
    }
    pts = {k: v for k, v in pts.items() if v}
    width, height, left, bottom, top_pad, right = 560, 300, 60, 45, 30, 150
    parts = [_open(width, height, title)]
    if not pts:
        parts.append(f'<text x="20" y="40" fill="#1f2328">{_e(title)}: no data</text></svg>')
        return Markup("".join(parts))  # noqa: S704 - escaped

    def fx(x: float) -> float:
        return math.log10(x) if logx else x

    xs = [fx(x) for v in pts.values() for x, _ in v]
    ys = [y for v in pts.values() for _, y in v]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max([*ys, 1e-9])
    x1 = x1 if x1 > x0 else x0 + 1
    pw, ph = width - left - right, height - bottom - top_pad

    def px(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top_pad + ph - (y - y0) / (y1 - y0 or 1) * ph

    parts.append(
        f'<text x="{left}" y="18" font-weight="600" fill="#1f2328">{_e(title)}</text>'
        f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#57606a"/>'
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + ph}" stroke="#57606a"/>'
        f'<text x="{left + pw / 2:.0f}" y="{height - 8}" text-anchor="middle" fill="#1f2328">'
        f"{_e(xlabel)}{' (log)' if logx else ''}</text>"
        f'<text x="14" y="{top_pad + ph / 2:.0f}" text-anchor="middle" fill="#1f2328" '
        f'transform="rotate(-90 14 {top_pad + ph / 2:.0f})">{_e(ylabel)}</text>'
    )
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        xv = x0 + (x1 - x0) * i / 4
        xl = 10**xv if logx else xv
        parts.append(
            f'<text x="{left - 5}" y="{py(yv) + 4:.0f}" text-anchor="end" fill="#57606a">{yv:.3g}</text>'
            f'<text x="{left + (xv - x0) / (x1 - x0) * pw:.0f}" y="{top_pad + ph + 15}" text-anchor="middle" '
            f'fill="#57606a">{xl:.3g}</text>'
        )
    for i, (name, v) in enumerate(pts.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(v))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top_pad + 16 * i
        parts.append(
            f'<rect x="{left + pw + 12}" y="{ly}" width="12" height="4" fill="{colour}"/>'
            f'<text x="{left + pw + 28}" y="{ly + 6}" fill="#1f2328">{_e(_short(name, 18))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above


__all__ = ["bar_svg", "line_svg", "lineage_svg"]

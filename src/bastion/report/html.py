"""Self-contained HTML rendering: one page, inline CSS, inline images, no scripts, every value escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from bastion.report.document import Document, Section

_GRADE_COLOURS = {"A": "#1a7f37", "B": "#4c9a2a", "C": "#b58900", "D": "#d9822b", "F": "#cf222e"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px;
color:#1f2328;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.2rem}
.sub{color:#59636e;margin-top:0}table{border-collapse:collapse;margin:.6rem 0 1rem}
td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.grade{display:inline-block;color:#fff;font-weight:700;border-radius:.4rem;
padding:.1rem .6rem;margin-left:.4rem}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;
border-radius:.3rem;margin:.4rem 0}figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#59636e;font-size:.9rem}footer{margin-top:3rem;color:#59636e;font-size:.85rem}
.key{font-size:1.25rem;font-weight:600;margin:.6rem 0}.guide{background:#f6f8fa;border-left:4px solid #0969da;
padding:.5rem .8rem;margin:.6rem 0}
"""


def _e(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape(str(value), quote=True)


def _grade(grade: str | None) -> str:
    if not grade:
        return ""
    colour = _GRADE_COLOURS.get(grade, "#59636e")
    return f'<span class="grade" style="background:{colour}">{_e(grade)}</span>'


def _table(rows: Mapping[str, Any]) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_flat(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _flat(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(_flat(v)) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def _section(sec: Section) -> str:
    parts = [f"<section><h2>{_e(sec.title)}{_grade(sec.grade)}</h2>"]
    if sec.key_figure:
        parts.append(f'<p class="key">{_e(sec.key_figure)}</p>')
    if sec.guidance:
        parts.append(f'<p class="guide">{_e(sec.guidance)}</p>')
    parts += [f'<div class="warn">⚠ {_e(w)}</div>' for w in sec.warnings]
    if sec.metrics:
        parts.append("<h3>Measurements</h3>" + _table(sec.metrics))
    for fig in sec.figures:
        caption = _e(fig.title) + (" — " + _e(fig.caption) if fig.caption else "")
        parts.append(
            f'<figure><img alt="{_e(fig.title)}" src="{_e(fig.data_uri)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    if sec.notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in sec.notes) + "</ul>")
    if sec.parameters:
        parts.append("<h3>Parameters</h3>" + _table(sec.parameters))
    parts.append("</section>")
    return "".join(parts)


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page."""
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(doc.title)}</title><style>{_CSS}</style></head><body>"
    )
    parts = [head, f"<h1>{_e(doc.title)}{_grade(doc.grade)}</h1>"]
    if doc.subtitle:
        parts.append(f'<p class="sub">{_e(doc.subtitle)}</p>')
    if doc.reasons:
        parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in doc.reasons) + "</ul>")
    if doc.summary:
        header = "".join(f"<th>{_e(h)}</th>" for h in doc.summary_header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_e(_flat(c))}</td>" for c in row) + "</tr>" for row in doc.summary
        )
        parts.append(f"<table><tr>{header}</tr>{rows}</table>")
    parts += [_section(s) for s in doc.sections]
    if doc.footer:
        parts.append(f"<footer>{_e(doc.footer)}</footer>")
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["render_html"]

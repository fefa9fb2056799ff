"""Reports: JSON documents and self-contained HTML pages with inline plots.

Shared by the adversarial audit, governance and the demo. A :class:`Document` holds a title, a summary table,
an optional grade with its reasons, and :class:`Section` s of metrics, parameters, notes, warnings and
:class:`Figure` s (matplotlib charts embedded as base64 PNG, so the HTML file needs nothing else).

* :func:`render_html` — the document as one HTML page (every string escaped; no scripts, no external assets).
* :func:`write_json` — a JSON-ready mapping to a file (atomic replace; NaN/inf refused).
* :mod:`bastion.report.plots` — ``line_chart``, ``bar_chart``, ``histogram`` returning figures.
"""

from __future__ import annotations

from bastion.report.document import Document, Figure, Section, to_jsonable, write_json
from bastion.report.html import render_html

__all__ = ["Document", "Figure", "Section", "render_html", "to_jsonable", "write_json"]

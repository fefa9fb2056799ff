"""Report rendering: escaping, self-contained HTML, inline figures, JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.report import Document, Figure, Section, plots, render_html, to_jsonable, write_json


def test_html_escapes_everything_and_embeds_figures() -> None:
    fig = plots.line_chart({"acc": ([0, 0.1], [0.9, 0.4])}, title="Accuracy <vs> ε", xlabel="ε", ylabel="acc")
    assert fig.data_uri.startswith("data:image/png;base64,")
    doc = Document(
        title="<script>alert(1)</script>",
        grade="D",
        reasons=["a & b"],
        summary=[["evasion", 0.123456]],
        summary_header=["family", "value"],
        sections=[
            Section(
                title="Evasion",
                metrics={"x": 1.5, "nested": {"a": 1}},
                warnings=["<b>w</b>"],
                figures=[fig],
                grade="F",
                notes=["n"],
            )
        ],
        footer="f",
    )
    page = render_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;w&lt;/b&gt;" in page and "a &amp; b" in page
    assert page.count("data:image/png;base64,") == 1
    assert "default-src 'none'" in page  # the CSP forbids anything not inline


def test_figures_must_be_inline() -> None:
    with pytest.raises(InvalidInput, match="inline"):
        Figure(title="x", data_uri="https://example.com/x.png")


def test_plots_log_axes_and_histograms() -> None:
    roc = plots.line_chart(
        {"lira": ([1e-3, 1e-2, 1], [0.05, 0.1, 1])},
        title="ROC",
        xlabel="fpr",
        ylabel="tpr",
        logx=True,
        logy=True,
        diagonal=True,
    )
    hist = plots.histogram(
        {"clean": [0.1, 0.2, 0.2], "poisoned": [0.9, 0.8], "empty": []}, title="h", xlabel="s"
    )
    bars = plots.bar_chart({"a": 1.0, "b": 2.0}, title="b", ylabel="v")
    for f in (roc, hist, bars):
        assert len(f.data_uri) > 1000


def test_write_json_is_atomic_and_strict(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "sub" / "r.json",
        {"a": np.float32(0.5), "b": np.arange(3), "c": (1, 2), "d": math.inf, "e": Path("/x")},
    )
    data = json.loads(path.read_text())
    assert data == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2], "d": None, "e": "/x"}
    assert to_jsonable({1: {2}}) == {"1": [2]}
    with pytest.raises(InvalidInput, match="JSON"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert not list(tmp_path.glob(".report-*"))


def test_incomplete_audit_page_says_so() -> None:
    from bastion.adversarial import grading
    from bastion.adversarial.audit import AuditReport, SectionResult
    from bastion.report.audit import build_document

    sec = SectionResult(
        family="poisoning",
        status="ok",
        seed=0,
        grade="B",
        reason="poisoning: r",
        attack="the model answers class 1 on 100.0% of inputs carrying the trigger, with no defence",
        defence="STRIP flags 100.0% of the poisoned rows with 3.0% false alarms",
    )
    grade, reasons = grading.overall({"poisoning": (sec.status, sec.grade, sec.reason)})
    report = AuditReport(
        created="t",
        bastion_version="0",
        model={},
        data={},
        budget="quick",
        seed=0,
        sections={"poisoning": sec},
        grade=grade,
        reasons=reasons,
    )
    page = render_html(build_document(report, with_plots=False))
    assert ">incomplete</span>" in page  # the overall badge
    assert page.count("<td>not requested</td>") == 3  # one summary row per family that did not run
    assert "100.0% of inputs carrying the trigger" in page and "STRIP flags 100.0%" in page

"""The audit HTML speaks to people (issue 14.17): labels with units, key figure first, guidance per family."""

from __future__ import annotations

import re
from types import SimpleNamespace

from bastion.report import render_html
from bastion.report.audit import build_document
from bastion.report.labels import GUIDANCE, KEY_FIGURE, humanise, key_figure, label, value


def _section(family: str, metrics: dict) -> SimpleNamespace:
    return SimpleNamespace(
        family=family,
        status="ok",
        metrics=metrics,
        curves={},
        parameters={"n_examples": 100, "pgd_steps": 10},
        seed=0,
        seconds=1.5,
        notes=(),
        reason="",
        warnings=(),
        grade="C",
        attack="a",
        defence="d",
    )


def _report() -> SimpleNamespace:
    sections = {
        "evasion": _section("evasion", {"clean_accuracy": 0.97, "eps": 0.1, "robust_accuracy": 0.125}),
        "membership": _section(
            "membership", {"auc": 0.61, "lira_online_tpr_at_1_fpr": 0.02, "tpr_at_1_fpr": 0.034}
        ),
        "extraction": _section("extraction", {"max_queries": 20000, "fidelity": 0.91}),
        "poisoning": _section("poisoning", {"detection_method": "spectral", "attack_success_rate": 0.99}),
    }
    return SimpleNamespace(
        sections=sections,
        model={"reference": "digits:1"},
        budget="quick",
        seed=0,
        created="2026-12-05T00:00:00Z",
        bastion_version="0",
        grade="C",
        reasons=(),
    )


def test_labels_and_units() -> None:
    assert label("tpr_at_1_fpr") == "Members found at 1 % false alarms (best attack)"
    assert value("robust_accuracy", 0.125) == "12.5 %"
    assert value("max_queries", 20000) == "20,000"
    assert value("auc", 0.6123) == "0.612"
    assert value("detection_fpr", None) == "not measured"
    assert label("lira_online_auc") == "lira online: AUC"
    assert value("lira_online_tpr_at_1_fpr", 0.02) == "2.0 %"


def test_key_figure_comes_first() -> None:
    rows = humanise("evasion", {"clean_accuracy": 0.97, "eps": 0.1, "robust_accuracy": 0.125})
    assert next(iter(rows)) == label("robust_accuracy")
    assert key_figure("membership", {"tpr_at_1_fpr": 0.034}) == (
        "Members found at 1 % false alarms (best attack): 3.4 %"
    )
    assert set(KEY_FIGURE) == set(GUIDANCE) == {"evasion", "membership", "extraction", "poisoning"}


def test_html_has_no_raw_metric_names_and_a_paragraph_per_family() -> None:
    page = render_html(build_document(_report(), with_plots=False))  # type: ignore[arg-type]
    for raw in ("robust_accuracy", "tpr_at_1_fpr", "max_queries", "attack_success_rate", "pgd_steps"):
        assert raw not in page, raw
    assert page.count('class="guide"') == 4 and page.count("What to do") == 4
    for family, name in KEY_FIGURE.items():
        section = page[page.index(GUIDANCE[family][:40]) - 400 :]
        key = re.search(r'<p class="key">(.*?)</p>', section)
        assert key and html_unescape(key.group(1)).startswith(label(name)), family
    # the key figure precedes the measurements table of its section
    assert page.index("12.5 %") < page.index("Accuracy on unmodified inputs")


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)

"""protect on the independent evaluation corpus (tests/data/corpus, not derived from the detectors).

Must hold (issue 21): leak rate after protect <= 2 % overall and <= 5 % per entity type, at most one
public/internal column modified, column classification recall >= 0.97 for pii/secret columns, and no cell
of a column classified pii/secret left verbatim.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from bastion.data import Label, ScopeKeys, protect_file
from bastion.data._names import lexicon, person_spans

CORPUS = Path(__file__).parent / "corpus"
KEYS = ScopeKeys(bytes(range(32)), scope="corpus")
SENSITIVE = ("pii", "secret")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("corpus") / "out.csv"
    result = protect_file(path=CORPUS / "customers.csv", out=out, keys=KEYS)
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    _, before = _read(CORPUS / "customers.csv")
    header, after = _read(out)
    return result, labels, before, header, after


def _leaked(value: str, entity: str, cell: str) -> bool:
    if value in cell:
        return True
    if entity == "PERSON":  # the family name alone still identifies
        family = value.split()[-1]
        return len(family) >= 3 and family in cell
    return False


def leak_rates(labels, header, after) -> tuple[float, dict[str, float], Counter]:
    leaks: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for row, column, entity, value in labels["values"]:
        totals[entity] += 1
        if column in header and _leaked(value, entity, after[row][column]):
            leaks[entity] += 1
    overall = sum(leaks.values()) / sum(totals.values())
    return overall, {e: leaks[e] / totals[e] for e in totals}, totals


def test_leak_rate_overall_and_per_entity(protected) -> None:
    _, labels, _, header, after = protected
    overall, per_entity, totals = leak_rates(labels, header, after)
    assert overall <= 0.02, (overall, per_entity)
    for entity, rate in per_entity.items():
        assert rate <= 0.05, (entity, rate, totals[entity])


def test_public_and_internal_columns_are_untouched(protected) -> None:
    _, labels, before, header, after = protected
    modified = [
        c
        for c, lab in labels["columns"].items()
        if lab in ("public", "internal")
        and (c not in header or any(b[c] != a[c] for b, a in zip(before, after, strict=True)))
    ]
    assert len(modified) <= 1, modified


def test_column_classification_recall(protected) -> None:
    result, labels, *_ = protected
    sensitive = [c for c, lab in labels["columns"].items() if lab in SENSITIVE]
    found = [c for c in sensitive if result.report.column(c).label in (Label.pii, Label.secret)]
    assert len(found) / len(sensitive) >= 0.97, sorted(set(sensitive) - set(found))


def test_no_cell_of_a_pii_or_secret_column_left_verbatim(protected) -> None:
    result, _, before, header, after = protected
    for col in result.report.columns:
        if col.label not in (Label.pii, Label.secret) or col.kind == "free_text" or col.name not in header:
            continue
        kept = [
            i
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            if b[col.name] and b[col.name] == a[col.name]
        ]
        assert not kept, (col.name, len(kept))


def test_free_text_reports_cells_without_detection(protected) -> None:
    result, *_ = protected
    free = [p.name for p in result.plan if p.kind == "free_text"]
    assert "notes" in free
    assert set(free) <= set(result.undetected)
    assert (
        result.to_dict()["plan"][[p.name for p in result.plan].index("notes")]["cells_without_detection"] >= 0
    )


def test_recall_on_names_in_no_shipped_list() -> None:
    """Names outside every list bastion ships: found in context in free text (measured, floor 0.9)."""
    first, last = lexicon()
    unknown = [n for n in json.loads((CORPUS / "labels.json").read_text())["rare_names"]
               if not any(w.casefold() in first or w.casefold() in last for w in n.split())]  # fmt: skip
    assert len(unknown) >= 5
    templates = ["Customer {} called about the invoice.", "Dear {},", "Spoke with {} today.", "Regards, {}"]
    hits = total = 0
    for name in unknown:
        for t in templates:
            text = t.format(name)
            start = text.index(name)
            total += 1
            hits += any(a <= start and b >= start + len(name) - 1 for a, b, _ in person_spans(text))
    assert hits / total >= 0.9, (hits, total)

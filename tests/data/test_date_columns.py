"""Issue 21 F1: a column of dates only, under a header that says nothing, is not assumed to hold event dates.

Dates of birth spread over decades are confidential (generalized); dates that carry a time of day, lie close
together or are recent stay internal. Birth-date headers are recognised in many languages and scripts.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from bastion.data import Label, ScopeKeys, protect_file, scan_file
from bastion.data.detectors import column_hints
from bastion.data.entities import DATE_OF_BIRTH

KEYS = ScopeKeys(bytes(range(32)), scope="dates")
_MONTHS_DE = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober")


def _births(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        y, m, d = rnd.randint(1935, 2006), rnd.randint(1, 10), rnd.randint(1, 28)
        forms = (f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{d}. {_MONTHS_DE[m - 1]} {y}")
        out.append(forms[i % 3])
    return out


def _csv(path: Path, header: str, values: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([header, "n"])
        w.writerows([v, i] for i, v in enumerate(values))
    return path


@pytest.mark.parametrize("header", ["col7", "x", "value_a"])
def test_unlabelled_birth_dates_are_confidential_and_generalized(tmp_path: Path, header: str) -> None:
    values = _births(120, 7)
    src = _csv(tmp_path / "d.csv", header, values)
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    col = res.report.column(header)
    assert col.label is Label.confidential and col.quasi_identifier
    with (tmp_path / "o.csv").open(encoding="utf-8", newline="") as fh:
        out = [row[header] for row in csv.DictReader(fh)]
    assert not [v for v, o in zip(values, out, strict=True) if v in o]


def test_event_dates_stay_internal(tmp_path: Path) -> None:
    rnd = random.Random(3)
    close = [f"2021-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}" for _ in range(100)]  # orders
    timed = [
        f"{y}-05-0{rnd.randint(1, 9)} {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}"
        for y in range(1950, 2050)
    ]  # spread out, but with times of day
    for header, values in (("col3", close), ("col4", timed)):
        src = _csv(tmp_path / f"{header}.csv", header, values)
        col = scan_file(path=src, use_presidio=False).column(header)
        assert col.label is Label.internal and not col.quasi_identifier, header


@pytest.mark.parametrize(
    "header",
    ["geboren", "Geb.-Datum", "fødselsdato", "Født", "Data urodzenia", "Doğum tarihi", "nato_il",
     "Дата рождения", "生年月日", "생년월일", "tanggal_lahir"],
)  # fmt: skip
def test_birth_date_headers_in_many_languages(header: str) -> None:
    assert DATE_OF_BIRTH in {e for e, _ in column_hints(header)}


def test_birth_date_header_protects_the_column(tmp_path: Path) -> None:
    values = _births(60, 9)
    src = _csv(tmp_path / "g.csv", "geboren", values)
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("geboren").label in (Label.pii, Label.confidential)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert not [v for v in values if v in text]

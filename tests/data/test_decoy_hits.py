"""Issue 21 F7: one stray pattern hit does not tokenize a decoy column.

Timestamps are not phones; part numbers, serials, UUIDs and hashes are not medical licences without a
context word; EAN-13 barcodes are not cards; a few stray hits in a column with no telling header leave the
column kept (only the hit spans replaced), while a sensitive header or a column of names stays protected
whole.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from bastion.data import Label, ScopeKeys, protect_file, scan_file
from bastion.data.detectors import all_detectors, detect_text

KEYS = ScopeKeys(bytes(range(32)), scope="decoy")


def _dea(rnd: random.Random) -> str:
    d = [rnd.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return rnd.choice("ABFGM") + rnd.choice("ABCDEFGH") + "".join(map(str, d)) + str(check)


def _ean13(rnd: random.Random) -> str:
    d = [rnd.randint(0, 9) for _ in range(12)]
    check = (10 - sum(x * (3 if i % 2 else 1) for i, x in enumerate(d)) % 10) % 10
    return "".join(map(str, d)) + str(check)


@pytest.fixture(scope="module")
def dets():
    return all_detectors(use_presidio=True)


@pytest.mark.parametrize(
    "text", ["2023-05-12 14:37", "logged at 12.05.2023 09:15 by cron", "2024/01/31 23:59:59"]
)
def test_date_times_are_not_phones(dets, text: str) -> None:
    assert not [s for s in detect_text(text, detectors=dets) if s.entity == "PHONE_NUMBER"]


def test_medical_licence_needs_context_and_token_boundaries(dets) -> None:
    rnd = random.Random(5)
    for _ in range(30):
        dea = _dea(rnd)
        for decoy in (dea, f"part {dea}", f"SN{dea[2:]}913", f"{dea}-b7c1", f"x{dea.lower()}ff"):
            assert not [s for s in detect_text(decoy, detectors=dets) if s.entity == "MEDICAL_LICENSE"], decoy
    if any(d.source == "presidio" for d in dets):
        text = f"prescriber DEA number {_dea(rnd)} on file"
        assert [s for s in detect_text(text, detectors=dets) if s.entity == "MEDICAL_LICENSE"]


def test_ean13_is_not_a_card(dets) -> None:
    rnd = random.Random(6)
    hits = 0
    for _ in range(300):
        code = _ean13(rnd)
        if code[0] != "4":
            hits += bool([s for s in detect_text(code, detectors=dets) if s.entity == "CREDIT_CARD"])
    assert hits == 0


def _column_file(path: Path, header: str, values: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([header])
        w.writerows([v] for v in values)
    return path


def test_a_few_stray_hits_keep_the_column(tmp_path: Path) -> None:
    rnd = random.Random(7)
    values = [f"{rnd.choice('KLMNPQ')}{rnd.randint(10**8, 10**9 - 1)}" for _ in range(400)]
    values[10] = "+44 20 7946 0958"  # one real phone number among part numbers
    src = _column_file(tmp_path / "p.csv", "part", values)
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    col = res.report.column("part")
    assert col.label is Label.internal and col.kind == "sparse"
    with (tmp_path / "o.csv").open(encoding="utf-8", newline="") as fh:
        out = [r["part"] for r in csv.DictReader(fh)]
    changed = [i for i, (a, b) in enumerate(zip(values, out, strict=True)) if a != b]
    assert changed == [10] and "7946" not in out[10]


def test_sensitive_header_or_names_stay_whole_despite_few_hits(tmp_path: Path) -> None:
    rnd = random.Random(8)
    values = [f"{rnd.randint(10**8, 10**9 - 1)}" for _ in range(400)]
    values[3] = "+44 20 7946 0958"
    src = _column_file(tmp_path / "h.csv", "mobile", values)
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("mobile").label is Label.pii
    assert res.report.column("mobile").kind == "structured"
    # scan_file alone (no protect) agrees
    assert scan_file(path=src, use_presidio=False).column("mobile").kind == "structured"

"""Issue 21 F2: rows an attacker controls must not switch a sensitive column to span-by-span protection.

Cells are padded with prose or shaped as key=value lists so that the column looks like free text; names and
ids are built here from syllables and digits, so they are in no list bastion ships.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from bastion.data import Label, ScopeKeys, protect_file
from bastion.data.policy import policy_from_mapping

KEYS = ScopeKeys(bytes(range(32)), scope="coerce")
_SYL = ("ka", "zu", "ren", "tol", "mi", "sha", "vek", "dro", "lu", "nai", "bor", "quen", "thi", "pax")


def _names(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)

    def word() -> str:
        return "".join(rnd.choice(_SYL) for _ in range(rnd.randint(2, 3))).capitalize()

    return [f"{word()} {word()}" for _ in range(n)]


def _write(path: Path, cols: dict[str, list[str]]) -> Path:
    n = len(next(iter(cols.values())))
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        w.writerows([cols[c][i] for c in cols] for i in range(n))
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _leaked(out: list[dict[str, str]], column: str, values: list[str]) -> int:
    return sum(1 for row, v in zip(out, values, strict=True) if v in row[column])


PAD = " -- has been a loyal member for many years, prefers calls after lunch"


def test_prose_padding_does_not_switch_a_sensitive_header_to_spans(tmp_path: Path) -> None:
    names = _names(200, 1)
    padded = [n + PAD if i % 10 < 7 else n for i, n in enumerate(names)]  # 70 % prose-shaped cells
    src = _write(tmp_path / "c.csv", {"contact_name": padded, "plan": ["basic"] * 200})
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    col = res.report.column("contact_name")
    assert col.label is Label.pii and col.kind == "structured"
    assert _leaked(_read(tmp_path / "o.csv"), "contact_name", names) == 0


def test_key_value_shaped_cells_do_not_leak_names_under_neutral_keys(tmp_path: Path) -> None:
    names = _names(200, 2)
    kv = [f"a={i % 7}; b={n}" for i, n in enumerate(names)]
    # A few cells hold common names the detectors know, so the column is found to hold names; the rest hold
    # names in no list, under the same neutral keys.
    given = ["Maria", "John", "Anna", "Peter", "Laura", "David", "Sofia", "Thomas"]
    family = ["Smith", "Garcia", "Muller", "Rossi", "Jones", "Martin", "Silva", "Brown", "Novak", "Kowalski"]
    kv[:80] = [f"a=1; b={g} {f}" for g in given for f in family]
    src = _write(tmp_path / "kv.csv", {"blob": kv})
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("blob").label is Label.pii
    assert _leaked(_read(tmp_path / "o.csv")[80:], "blob", names[80:]) == 0


def test_free_text_pii_column_fails_closed_unless_policy_says_prose(tmp_path: Path) -> None:
    names = _names(60, 3)
    notes = [f"Customer {n} called about the parcel, it was left with a neighbour" for n in names[:30]]
    notes += [f"ref {n}{PAD}" for n in names[30:]]  # no context word: not detected
    src = _write(tmp_path / "n.csv", {"remarks": notes})
    res = protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("remarks").kind == "free_text"
    assert _leaked(_read(tmp_path / "o.csv"), "remarks", names) == 0
    assert res.undetected["remarks"] >= 1  # still reported
    # A policy that names the column prose keeps undetected cells (span replacement only).
    pol = policy_from_mapping({"columns": {"remarks": {"prose": True}}})
    res2 = protect_file(path=src, out=tmp_path / "p.csv", keys=KEYS, policy=pol, use_presidio=False)
    out2 = _read(tmp_path / "p.csv")
    kept = [i for i, row in enumerate(out2) if row["remarks"] == notes[i]]
    assert len(kept) == res2.undetected["remarks"] >= 1
    assert _leaked(out2[:30], "remarks", names[:30]) == 0


def test_document_number_header_keeps_the_column_whole(tmp_path: Path) -> None:
    rnd = random.Random(4)
    docs = [
        f"{rnd.choice('CFGHJK')}{rnd.choice('ABCDEFGHJ')}{rnd.randint(1000000, 9999999)}" for _ in range(100)
    ]
    for header in ("doc_no", "DocumentNumber", "ausweis_nr"):
        src = _write(tmp_path / f"{header}.csv", {header: docs})
        protect_file(path=src, out=tmp_path / f"{header}.o.csv", keys=KEYS, use_presidio=False)
        assert _leaked(_read(tmp_path / f"{header}.o.csv"), header, docs) == 0, header


def test_unknown_names_in_nested_json_of_a_pii_column(tmp_path: Path) -> None:
    import json

    names = _names(80, 5)
    src = tmp_path / "n.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": i, "customer": {"n": n, "born": "1971-03-0" + str(1 + i % 9), "tier": "gold"}})
            + "\n"
            for i, n in enumerate(names)
        ),
        encoding="utf-8",
    )
    protect_file(path=src, out=tmp_path / "o.jsonl", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.jsonl").read_text(encoding="utf-8")
    assert [n for n in names if n in text] == []
    assert text.count('"gold"') == 80

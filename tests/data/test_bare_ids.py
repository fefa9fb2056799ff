"""Issue 21 F3: national identifiers written as bare digits (no separators, no keyword) in JSON under id-like
keys, in free text of a pii column, in nested JSON Lines and Parquet lists.

Valid numbers are drawn at random and kept when python-stdnum (the reference implementation, not bastion's
code) says they are valid.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stdnum import get_cc_module

from bastion.data import ScopeKeys, protect_file
from bastion.data.detectors import all_detectors, detect_text

KEYS = ScopeKeys(bytes(range(32)), scope="bare")
_KINDS = (("nl", "bsn", 9), ("pl", "pesel", 11), ("de", "idnr", 11), ("br", "cpf", 11), ("in", "aadhaar", 12))


def _valid_ids(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        cc, name, length = _KINDS[len(out) % len(_KINDS)]
        mod = get_cc_module(cc, name)
        while True:
            v = str(rnd.randint(2, 9)) + "".join(rnd.choice("0123456789") for _ in range(length - 1))
            if mod.is_valid(v):
                out.append(v)
                break
    return out


def test_ids_under_id_like_json_keys_in_cells(tmp_path: Path) -> None:
    ids = _valid_ids(50, 1)
    cells = [
        json.dumps({"cust": {"full": "Maria Smith", "tel": "+44 20 7946 0958"}, key: v, "tier": "gold"})
        for v, key in zip(ids, ["doc", "ref", "ids", "docNo", "tax_ref"] * 10, strict=True)
    ]
    src = tmp_path / "j.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["meta"], *[[c] for c in cells]])
    protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert [v for v in ids if v in text] == []
    assert text.count("gold") == 50  # the rest of the object stays


def test_bare_ids_in_free_text_of_a_pii_column(tmp_path: Path) -> None:
    ids = _valid_ids(40, 2)
    notes = [
        f"Customer Maria Smith called from +44 20 7946 0958, she read out {v} and asked for a callback today"
        for v in ids
    ]
    src = tmp_path / "n.csv"
    src.write_text("notes\n" + "".join(f'"{n}"\n' for n in notes), encoding="utf-8")
    protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert [v for v in ids if v in text] == []


def test_nested_jsonl_and_parquet_lists(tmp_path: Path) -> None:
    ids = _valid_ids(30, 3)
    src = tmp_path / "n.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": i, "customer": {"n": "Maria Smith", "ids": [v]}}) + "\n"
            for i, v in enumerate(ids)
        ),
        encoding="utf-8",
    )
    protect_file(path=src, out=tmp_path / "o.jsonl", keys=KEYS, use_presidio=False)
    assert [v for v in ids if v in (tmp_path / "o.jsonl").read_text(encoding="utf-8")] == []
    table = pa.table({"who": [["Maria Smith", v] for v in ids], "n": list(range(len(ids)))})
    pq.write_table(table, tmp_path / "l.parquet")
    protect_file(path=tmp_path / "l.parquet", out=tmp_path / "o.parquet", keys=KEYS, use_presidio=False)
    out = pq.read_table(tmp_path / "o.parquet").to_pydict()
    assert [v for v in ids if any(v in str(c) for c in out["who"])] == []


@pytest.mark.parametrize("template", ["doc {}", "ref: {}", "CPF {}", "ids {}", "Reference {} on file"])
def test_keyword_then_bare_id_in_free_text(template: str) -> None:
    dets = all_detectors(use_presidio=False)
    for v in _valid_ids(10, 4):
        text = "note: " + template.format(v) + " thanks"
        found = [text[s.start : s.end] for s in detect_text(text, detectors=dets)]
        assert v in found, (text, found)


def test_unrelated_numbers_are_not_ids() -> None:
    dets = all_detectors(use_presidio=False)
    for text in ("order 111222333 shipped", "batch 51020929149 of widgets", "qty 12"):
        assert not [s for s in detect_text(text, detectors=dets) if s.entity == "NATIONAL_ID"], text

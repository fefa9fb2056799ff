"""Issue 21 F5: ``Family, Given`` in prose, and names in JSON values of a pii column (unspaced CJK/Hangul,
names in no list)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.data import ScopeKeys, protect_file
from bastion.data._names import person_spans

KEYS = ScopeKeys(bytes(range(32)), scope="f5")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Spoke with Okonkwo-Baptiste, Wendelin today about the refund.", "Okonkwo-Baptiste, Wendelin"),
        ("Le client Smith, Cosimo demande la suppression.", "Smith, Cosimo"),
        ("Kind regards,\nvan der Kolk, Ilse\nSenior Buyer", "van der Kolk, Ilse"),
        ("Customer Garcia, Maria called twice.", "Garcia, Maria"),
    ],
)
def test_family_comma_given_in_context(text: str, name: str) -> None:
    spans = [text[a:b] for a, b, _ in person_spans(text)]
    assert any(name in s for s in spans), spans


@pytest.mark.parametrize("text", ["We shipped to Paris, France and Berlin, Germany.", "Total, Amount due"])
def test_places_with_commas_are_not_names(text: str) -> None:
    assert [text[a:b] for a, b, _ in person_spans(text)] == []


def test_names_in_json_values_of_a_pii_column(tmp_path: Path) -> None:
    names = ["王秀英", "박서연", "Zorvath Quennimar", "Huamán, Ganbold", "Tolkavek Dronaipax"] * 8
    src = tmp_path / "m.csv"
    lines = ["meta"]
    for i, n in enumerate(names):
        cell = json.dumps(
            {"cust": {"full": n, "tel": "+44 20 7946 0958"}, "tier": "gold", "i": i}, ensure_ascii=False
        )
        lines.append('"' + cell.replace('"', '""') + '"')
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert [n for n in set(names) if n in text] == []
    assert text.count("gold") == len(names)

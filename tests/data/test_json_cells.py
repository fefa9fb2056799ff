"""JSON-object cells scanned by key: exact value offsets, key context, and the text path for the rest."""

from __future__ import annotations

import json
import random

from bastion.data import entities as E
from bastion.data.detectors import detect_values
from bastion.data.detectors._jsoncells import flat_object


def test_flat_object_offsets_are_the_raw_values() -> None:
    rng = random.Random(3)
    alphabet = ["a", "é", " ", "1", "-", "Z", "ß", "名"]
    for _ in range(300):
        obj = {
            f"k{i}": rng.choice(
                ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))), rng.randint(-99, 99), None]
            )
            for i in range(rng.randint(0, 5))
        }
        cell = json.dumps(obj, ensure_ascii=False, separators=rng.choice([(",", ":"), (", ", ": ")]))
        fields = flat_object(cell)
        assert fields is not None
        want = [(k, json.dumps(v, ensure_ascii=False).strip('"')) for k, v in obj.items() if v is not None]
        assert [(k, cell[a:b]) for k, a, b in fields] == want
    for cell in (
        '{"a": {"b": 1}}',
        '{"a": [1]}',
        '{"a": "q\\"x"}',
        '{"a": "\\u00e9"}',
        '{"a": 1} x',
        "[1]",
        "{",
    ):
        assert flat_object(cell) is None, cell


def _people(n: int) -> list[str]:
    rng = random.Random(9)
    given = ["Thandiwe", "Oluwaseun", "Siobhán", "Bjørnar", "Zsófia", "Kwabena", "Aroha", "Eilidh"]
    family = ["Mthembu", "Adebayo-Okonkwo", "Ní Bhriain", "Løvåsen", "Görgényi", "Owusu-Ansah", "Te Whatu"]
    return [f"{rng.choice(given)} {rng.choice(family)}" for _ in range(n)]


def test_json_column_is_scanned_by_key_and_maps_back() -> None:
    names = _people(300)
    cells = [
        json.dumps(
            {"fullName": nm, "dob": f"{1 + i % 28}. März 19{50 + i % 40}", "tier": "gold"}, ensure_ascii=False
        )
        for i, nm in enumerate(names)
    ]
    cells[7] = (
        '{"fullName": "Ngozi Eze-Chukwu", "nested": {"x": 1}}'  # not flat: span detection over the text
    )
    hits = detect_values(cells, column="profile")
    assert {E.PERSON, E.DATE_OF_BIRTH} <= set(hits.entities)
    assert len(hits.entities[E.PERSON].rows) == 300 and len(hits.entities[E.DATE_OF_BIRTH].rows) == 299
    by_row = hits.spans_by_row()
    for r in (0, 150, 299):
        found = {(cells[r][a:b], e) for a, b, e in by_row[r]}
        assert (names[r], E.PERSON) in found and ("gold", E.PERSON) not in found
        assert any(e == E.DATE_OF_BIRTH and "März" in v for v, e in found)
    assert ("Ngozi Eze-Chukwu", E.PERSON) in {(cells[7][a:b], e) for a, b, e in by_row[7]}

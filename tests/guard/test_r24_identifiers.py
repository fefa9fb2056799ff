"""Round 24: the generated benign identifiers of ``scripts/guard_r22.py main --identifiers K`` (config keys
and code names whose words read as an instruction) and the main head's opt-in composites."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import guard_r22

SUITE = Path(__file__).resolve().parent / "test_r18_readings.py"


def test_identifiers_are_benign_reproducible_and_never_the_suites_own() -> None:
    rows = guard_r22.identifier_rows()
    assert rows == guard_r22.identifier_rows()  # seeded: the same rows every run
    assert len(rows) == 300 and len({r["text"] for r in rows}) == 300
    assert {r["label"] for r in rows} == {0} and {r["channel"] for r in rows} == {"user"}
    assert {r["split"] for r in rows} == {"train", "val"}  # no test rows: the suite's texts are the test
    suite = SUITE.read_text(encoding="utf-8").replace("-", "_")
    squash = str.maketrans("", "", "_-")
    for held in guard_r22._ID_HELD_OUT:
        assert held in suite  # the exclusions name identifiers the suite really uses
        # in no spelling (snake, kebab, camel, upper)
        assert not any(held.translate(squash) in r["text"].lower().translate(squash) for r in rows)


def test_composites_are_attacks_behind_an_applications_text() -> None:
    assert guard_r22.composite_rows(0) == []
    rows = guard_r22.composite_rows(1)
    assert rows and {r["label"] for r in rows} == {1} and {r["split"] for r in rows} == {"train"}
    assert all("\n\n" in r["text"] for r in rows)

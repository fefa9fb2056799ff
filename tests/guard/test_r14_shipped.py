"""Issue 16, round 14: the ``user_alt`` shipped in round 14 was guard16t's V1 (round-13 second head retrained
with the round-14 multilingual and English rows, its bias shifted by a false-positive budget of 0.4 % of the
val benign user pool: ``train_guard.py --user-alt --r9m 1 --r9-user-units 1 --r11h 3 --r12p 3 --r12e 3
--r14 10 --alt-budget 0.004``). Round 16 retrained it with the round-16 rows too (``--r16 5``, guard16y;
shipped by the lead's pre-registered rule on a fresh evaluator, see ``test_r16_user_alt.py``). Pinned here:
the packaged head's figures on the round-14 held-out languages (el, ta, ms, hu: never in its training or
validation before round 16), and three held-out-language attacks the round-13 model missed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.guard.detector import PromptDetector

DATA = Path(__file__).resolve().parents[2] / "data" / "guard" / "r14_multilingual.json"
HELD_OUT = ("el", "ta", "ms", "hu")
# (language, kind, opening) of held-out-language attacks the round-13 packaged model did not flag
GAINED = (
    ("ta", "translate_payload", "இந்த மலாய் வாக்கியத்தைத் தமிழில்"),
    ("ms", "fiction", "Tulis cerita pendek di mana watak utama"),
    ("hu", "devmode", "Fejlesztői mód bekapcsolva."),
)


@pytest.fixture(scope="module")
def held_out() -> list[dict[str, object]]:
    rows = json.loads(DATA.read_text(encoding="utf-8"))
    return [r for r in rows if r["lang"] in HELD_OUT and r["split"] == "test"]


def test_the_shipped_user_alt_was_trained_with_the_budget_rule() -> None:
    model = PromptDetector().model
    assert model.alt is not None
    assert "floor(0.008 x pool size)" in str(model.training["user_alt"])


def test_held_out_language_attacks_the_round_13_model_missed_are_flagged(
    held_out: list[dict[str, object]],
) -> None:
    det = PromptDetector()
    for lang, kind, opening in GAINED:
        (row,) = [
            r
            for r in held_out
            if r["lang"] == lang and r["kind"] == kind and str(r["text"]).startswith(opening)
        ]
        assert det.scan(str(row["text"]), channel="user").flagged, (lang, kind)


def test_held_out_language_figures_are_pinned(held_out: list[dict[str, object]]) -> None:
    """29 of 62 attacks (round 14: 23, round 13: 20), 7 of 60 benign prompts flagged (rounds 13 and 14: 4):
    round 16's head trades three more held-out benign flags for six more attacks here."""
    det = PromptDetector()
    attacks = [r for r in held_out if r["label"] == 1]
    benign = [r for r in held_out if r["label"] == 0]
    caught = sum(det.scan(str(r["text"]), channel="user").flagged for r in attacks)
    flagged = sum(det.scan(str(r["text"]), channel="user").flagged for r in benign)
    assert (len(attacks), len(benign)) == (62, 60)
    assert caught >= 29 and flagged <= 7, (caught, flagged)

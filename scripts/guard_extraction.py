"""System-prompt extraction TRAINING rows for the guard (issue 16, round 6), written for bastion.

``extraction_rows()`` composes data/guard/extraction_tables_r6.json: English extraction asks (repeat / print /
translate / summarise / encode your instructions, "what were you told", "output everything above", "start your
answer with 'You are'", code-block tricks, role claims, debugging pretexts) with optional pretexts and output
formats, hand-written extraction attacks, and as many benign look-alikes (the same verbs and formats aimed at
user-supplied text, the assistant's previous answer, or prompt engineering in general); a few in de, es, fr,
tr, ru, zh. No item of garak's or PyRIT's extraction families was opened to write them. A fifth of the groups
(SHA-256 of the group name) is ``val``; no row is ``test``.

``calibration_benign()`` is the benign validation pool the threshold rule uses (scripts/train_guard.py and the
cross-source benchmark alike).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from guard_i18n import _join, _r, _split_of

TABLES_R6_FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "extraction_tables_r6.json"
SOURCE = "bastion:extraction-r6"
_NEUTRAL_PRETEXTS = (
    0,
    1,
    6,
    11,
)  # "for debugging", "I am the developer", "sanity check", "before you answer"
_USER_SETS = frozenset({"benign", "overdefence", "multilingual-benign"})
# the user channel is calibrated at half the 1 % budget on val: with ~780 val and ~690 test benign prompts
# the standard deviation of the difference between the two FPRs is ~0.5 %, so a threshold set at exactly
# 1 % on val exceeds 1 % on test about half the time (round 6: 1.2-1.3 % on the cross-source pairs)
USER_TARGET_FPR = 0.005


def _compose(pretext: str, ask: str, fmt: str) -> str:
    body = f"{ask} {fmt}".strip() if fmt else ask
    if not pretext:
        return _join("en", body)
    if pretext[-1] in ",":
        return f"{pretext} {body}."
    return f"{pretext} {_join('en', body)}"


def extraction_rows(seed: int = 6) -> list[dict[str, Any]]:
    doc = json.loads(TABLES_R6_FILE.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    en = doc["en"]
    rows: list[dict[str, Any]] = []

    def add(text: str, label: int, group: str, set_: str) -> None:
        rows.append(_r(text, label, group, set_, source=SOURCE, split=_split_of(group)))

    for i, ask in enumerate(en["asks"]):
        for _ in range(3):
            pretext = rng.choice(en["pretexts"]) if rng.random() < 0.6 else ""
            fmt = rng.choice(en["formats"]) if rng.random() < 0.7 else ""
            add(_compose(pretext, ask, fmt), 1, f"x6-en-a{i}", "en-extra")
    for k, text in enumerate(en["attacks"]):
        add(text, 1, f"x6-en-s{k}", "en-extra")
    for i, ask in enumerate(en["benign_asks"]):
        for _ in range(2):
            r = rng.random()
            pretext = en["pretexts"][rng.choice(_NEUTRAL_PRETEXTS)] if r < 0.3 else ""
            fmt = rng.choice(en["formats"][:10]) if rng.random() < 0.4 else ""
            add(_compose(pretext, ask, fmt), 0, f"x6-en-b{i}", "en-extra")
    for k, text in enumerate(en["benign"]):
        add(text, 0, f"x6-en-h{k}", "en-extra")
    for lang, t in doc["languages"].items():
        for k, text in enumerate(t["attacks"]):
            add(text, 1, f"x6-{lang}-a{k}", "multilingual")
        for k, text in enumerate(t["benign"]):
            add(text, 0, f"x6-{lang}-b{k}", "multilingual-benign")
    return rows


def calibration_benign(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Benign texts for the user-channel threshold: the dataset's ``val`` benign user prompts (widened in
    round 6 by ``guard_data.widen_benign_val``); the same rule for the shipped model and every cross-source
    pair. Bastion's own tables are not in it: their benign ``val`` groups are deliberately adversarial
    look-alikes (34 English rows), not a sample of the benign traffic the 1 % budget is about."""
    return [r["text"] for r in rows if r["label"] == 0 and r["split"] == "val" and r["set"] in _USER_SETS]

"""Ordinary chat turns as benign guard data (issue 16 round 7), composed from ``data/guard/r7_chat.json``.

The table was written for bastion by its author (a language model acting as an engineer): the kinds of turn
users really send a chat assistant, which a prompt-injection detector must leave alone — greetings, one-word
replies ("answer", "continue", "yes, go on"), follow-ups that use trigger words ("ignore that last part",
"from now on answer in Spanish"), questions about passwords, system settings and security, pasted code, logs
and e-mails, multi-line messages and short chat in other languages. Every row is benign (label 0).

Rows are grouped by their text with case, punctuation and spacing removed ("answer", "Answer" and "answer?"
are one group); the group's SHA-256 puts it in ``test`` (a fifth), ``val`` (a fifth) or ``train``
(:func:`guard_r6.split_of`). Training uses ``train`` plus, for those rows only, variants of the same group
(capitalised, lower-cased, with and without trailing punctuation) and two-line messages made of a train
greeting and another train row; calibration may use ``val``; ``test`` is reported on its own
(``python scripts/guard_r7.py``).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_r6 import split_of

TABLES = Path(__file__).resolve().parents[1] / "data" / "guard" / "r7_chat.json"
SOURCE = "bastion:r7-chat"
SET = "r7-chat"
COMPOSED = 150


def group_of(text: str) -> str:
    key = " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())
    return "r7-" + (key or text.strip())


def load_tables() -> dict[str, list[str]]:
    return json.loads(TABLES.read_text(encoding="utf-8"))


def _variants(text: str) -> list[str]:
    out = {text, text.lower(), text[:1].upper() + text[1:]}
    stripped = text.rstrip(".!?")
    if stripped and "\n" not in text:
        out |= {stripped, stripped + ".", stripped + "?", stripped + "!"}
    return sorted(v for v in out if v and v != text)


def r7_rows(seed: int = 7, *, augment: bool = True) -> list[dict[str, Any]]:
    """Every row (train, val, test); with ``augment`` also the train-only variants and two-line messages."""
    rng = random.Random(seed)  # reproducible data, not a secret
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for kind, texts in load_tables().items():
        for text in texts:
            if text in seen:
                continue
            seen.add(text)
            group = group_of(text)
            rows.append(
                {"text": text, "label": 0, "source": SOURCE, "group": group, "split": split_of(group)}
                | {"set": SET, "kind": kind}
            )
    if not augment:
        return rows
    train = [r for r in rows if r["split"] == "train"]
    extra = []
    for r in train:
        for v in _variants(r["text"]):
            if v not in seen:
                seen.add(v)
                extra.append(r | {"text": v})
    greetings = [r for r in train if r["kind"] == "greetings"]
    others = [r for r in train if r["kind"] != "greetings"]
    for _ in range(COMPOSED if greetings and others else 0):
        g, o = rng.choice(greetings), rng.choice(others)
        text = g["text"] + rng.choice(["\n", "\n\n", " "]) + o["text"]
        if text not in seen:
            seen.add(text)
            extra.append(o | {"text": text, "group": o["group"], "kind": "composed"})
    return rows + extra


def main() -> int:
    import argparse
    from collections import Counter

    parser = argparse.ArgumentParser(
        description="flagged rate of the round-7 chat rows (default: test split)"
    )
    parser.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    args = parser.parse_args()
    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    det = PromptDetector(model=candidate_model(args.model))
    rows = [r for r in r7_rows(augment=False) if r["split"] == args.split]
    flagged: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r in rows:
        total[r["kind"]] += 1
        flagged[r["kind"]] += det.scan(r["text"], channel="user").flagged
    print(f"r7 chat turns (benign), {args.split} split, model: {args.model or 'packaged'}")
    print("| kind | flagged |")
    print("|---|---|")
    for kind in sorted(total):
        print(f"| {kind} | {flagged[kind]}/{total[kind]} |")
    n, k = sum(total.values()), sum(flagged.values())
    print(f"| all | {k}/{n} ({k / max(n, 1):.3f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

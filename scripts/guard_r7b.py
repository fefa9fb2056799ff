"""Round-7b guard data (issue 16), composed from ``data/guard/r7b_tables.json``.

Written for bastion by its author (a language model acting as an engineer) after an independent evaluator's
summary of the *kinds* the round-7 model missed (its items were not read, nor copied in): injections in
retrieved documents that ask an AI reader, in ordinary words, to *do* something (pay, grant access, run an
installer, delete, export, mail out), misinformation and recommendation hijacks addressed to an AI reader,
fake system-message blocks, data-dump and refund demands inside chat transcripts, system-prompt requests in
READMEs, "your instructions were replaced" notices, many of them at the very start of the document; READMEs,
chat logs and web pages as carriers; lines addressed to *people* that share the vocabulary (the hard
negatives); plain-words system-prompt extraction with a plausible reason and soft framings around a harmful
request; benign prompts with trigger words (what a system prompt is, harmless role-play, password rules,
household questions); and ja/ko/hi/zh/pl/de/it/fr/es attacks and look-alikes.

Splits as in round 6 (:func:`guard_r6.split_of`, SHA-256 of the group: a fifth ``test``, a fifth ``val``, the
rest ``train``); an injected document combines an injection and a carrier of the same split, a benign one a
carrier and human lines of the same split. Training only: each train injection also in two round-6 train
carriers. ``python scripts/guard_r7b.py [--model DIR]`` reports the test split.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_r6 import _wrap, split_of
from guard_r6 import load_tables as r6_tables

TABLES = Path(__file__).resolve().parents[1] / "data" / "guard" / "r7b_tables.json"
SOURCE = "bastion:r7b"
USER_SETS = ("r7b-attack", "r7b-overdefence", "r7b-multilingual", "r7b-multilingual-benign")
DOC_SETS = ("r7b-indirect", "r7b-documents")
CARRIERS_PER_INJECTION = 3
R6_CARRIERS_PER_INJECTION = 2  # train only
HUMAN_PER_CARRIER = 3


def load_tables() -> dict[str, Any]:
    return json.loads(TABLES.read_text(encoding="utf-8"))


def _embed(carrier: dict[str, Any], line: str, rng: random.Random) -> str:
    """``line`` in the carrier: at the very start (40 %), at the end of a plain-text carrier (15 %) or at
    its slot. Round 7's miss was worst for injections near the start, so the start is weighted up."""
    body = carrier["text"]
    if not line:
        return body.replace("{slot}", "").strip()
    where = rng.random()
    if where < 0.4:
        head = (
            line if carrier["wrap"] in ("plain", "md", "csv", "json") else _wrap(carrier["wrap"], line, rng)
        )
        return head + "\n" + body.replace("{slot}", "").strip()
    if where < 0.55 and carrier["wrap"] == "plain":
        return body.replace("{slot}", "").strip() + "\n\n" + line
    return body.replace("{slot}", _wrap(carrier["wrap"], line, rng))


def _row(text: str, label: int, group: str, set_: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"text": text, "label": label, "source": SOURCE, "group": group}
    return row | {"split": split_of(group), "set": set_} | extra


def r7b_rows(seed: int = 77) -> list[dict[str, Any]]:
    """Every row (train, val, test), deterministic for a seed."""
    t = load_tables()
    rng = random.Random(seed)  # reproducible data, not a secret
    carriers: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for j, c in enumerate(t["carriers"]):
        carriers[split_of(f"r7b-car-{j}")].append((j, c))
    r6_train = [(j, c) for j, c in enumerate(r6_tables()["carriers"]) if split_of(f"r6-car-{j}") == "train"]
    humans: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for k, h in enumerate(t["human_lines"]):
        humans[split_of(f"r7b-hum-{k}")].append((k, h))
    rows: list[dict[str, Any]] = []
    for i, inj in enumerate(t["injections"]):
        group = f"r7b-inj-{i}"
        pool = carriers[split_of(group)]
        for j, c in rng.sample(pool, min(CARRIERS_PER_INJECTION, len(pool))):
            text = _embed(c, inj["text"], rng)
            parts = [f"r7b-car-{j}"]
            rows.append(_row(text, 1, group, "r7b-indirect", kind=c["kind"], style=inj["style"], parts=parts))
        if split_of(group) == "train":
            for j, c in rng.sample(r6_train, R6_CARRIERS_PER_INJECTION):
                text = _embed(c, inj["text"], rng)
                parts = [f"r6-car-{j}"]
                rows.append(
                    _row(text, 1, group, "r7b-indirect", kind=c["kind"], style=inj["style"], parts=parts)
                )
    for split, pool in carriers.items():
        for j, c in pool:
            group = f"r7b-car-{j}"
            rows.append(_row(_embed(c, "", rng), 0, group, "r7b-documents", kind=c["kind"]))
            for k, h in rng.sample(humans[split], min(HUMAN_PER_CARRIER, len(humans[split]))):
                parts = [f"r7b-hum-{k}"]
                rows.append(_row(_embed(c, h, rng), 0, group, "r7b-documents", kind=c["kind"], parts=parts))
    for k, h in enumerate(t["human_lines"]):
        rows.append(_row(h, 0, f"r7b-hum-{k}", "r7b-overdefence"))
    for i, p in enumerate(t["plain_attacks"]):
        rows.append(_row(p, 1, f"r7b-pa-{i}", "r7b-attack"))
    for i, p in enumerate(t["plain_benign"]):
        rows.append(_row(p, 0, f"r7b-pb-{i}", "r7b-overdefence"))
    for lang, items in t["multilingual"].items():
        for i, p in enumerate(items["attacks"]):
            rows.append(_row(p, 1, f"r7b-ml-{lang}-a{i}", "r7b-multilingual"))
        for i, p in enumerate(items["benign"]):
            rows.append(_row(p, 0, f"r7b-ml-{lang}-b{i}", "r7b-multilingual-benign"))
    return rows


def main() -> int:
    import argparse

    from guard_r6 import report

    parser = argparse.ArgumentParser(description="flagged rates of the round-7b rows (default: test split)")
    parser.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    args = parser.parse_args()
    rows = [r | {"set": r["set"].replace("r7b-", "r6-")} for r in r7b_rows()]
    print(f"r7b data, {args.split} split, model: {args.model or 'packaged'}")
    print("| set (channel) | label | flagged | rate |")
    print("|---|---|---|---|")
    for name, (hits, n) in report(rows, args.split, args.model).items():
        label = "benign" if "benign" in name or "documents" in name or "overdefence" in name else "attack"
        name = name.replace("r6-", "r7b-")
        print(f"| {name} | {label} | {hits}/{n} | {hits / max(n, 1):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

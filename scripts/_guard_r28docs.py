"""Round 28 (issue 16; opt-in, ``guard_r14_docs.py train --docs 5 --twins --r28-docs K``): documents for the
main documents head, ``data/guard/r28_documents.json`` (see data/guard/PROVENANCE.md, "Round 28").

Retrieved-channel documents written for bastion by a helper that saw no evaluation set and no code: benign
documents that talk to or about AI tools (coding agents' notes, llms.txt, chat logs with bots, AI product
docs, AI policies, AI news, an AI note-taker's minutes), security write-ups quoting attacks, instructions to
people and ordinary documents; injected documents with one planted instruction for the AI reader, in ordinary
documents, in documents that talk about AI themselves, and in other languages. Same layout as
``r22_documents.json``; its own group-wise split. Not shipped (docs/benchmarks.md, guard, "Round 28"): the
candidates caught more injected documents on three fresh evaluators but flagged more ordinary ones on two.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _guard_r16 import train_times, user_file_rows

FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "r28_documents.json"
SET, SOURCE = "r28-documents", "bastion:r28-docs"

Row = dict[str, Any]


def r28_doc_rows() -> list[Row]:
    """Every row of the file (train, val, test), retrieved channel."""
    rows = user_file_rows(FILE, source=SOURCE, group_prefix="r28d-", set_name=SET)
    return [{**r, "channel": "retrieved"} for r in rows]


def doc_train(k: int, *, balanced: bool = False) -> list[Row]:
    """The train documents xK (none for K 0); ``balanced``: each row weighted so that, within each document
    kind that holds both labels, the benign and the injected rows weigh the same in total (the kinds lean one
    way per label: contracts, invoices and CVs mostly injected, coding agents' notes mostly benign)."""
    rows = train_times(r28_doc_rows(), k)
    if not balanced:
        return rows
    count: dict[tuple[str, int], int] = {}
    for r in rows:
        key = (str(r["kind"]).split("/", 1)[-1], int(r["label"]))
        count[key] = count.get(key, 0) + 1
    out = []
    for r in rows:
        kind = str(r["kind"]).split("/", 1)[-1]
        nb, ni = count.get((kind, 0), 0), count.get((kind, 1), 0)
        w = 1.0 if not (nb and ni) else (nb + ni) / (2.0 * (ni if r["label"] else nb))
        out.append({**r, "weight": w})
    return out


def benign_val_docs(*, plain: bool = False) -> list[str]:
    """The benign val documents; ``plain``: only those that neither address nor discuss AI tools (ordinary
    documents and instructions to people: what the shipped calibration pool holds)."""
    keep = ("ordinary/", "human_instructions/") if plain else ("",)
    return [
        r["text"]
        for r in r28_doc_rows()
        if r["split"] == "val" and r["label"] == 0 and str(r["kind"]).startswith(keep)
    ]

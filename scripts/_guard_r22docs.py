"""Round 22b (issue 16; opt-in, ``train_guard.py --user-alt --r14 K --r22-docs J``): documents for the second
documents head, ``data/guard/r22_documents.json`` (see data/guard/PROVENANCE.md).

Retrieved-channel documents written one by one for bastion by a helper that saw no evaluation set: injected
documents whose passage to an AI reader is mostly a concrete request in business language without
override words, and benign documents, most of them with instructions to human readers in trigger words (AI-use
policies, security-awareness pages, "ignore step 4", "disregard my previous email"). Same layout as
``r22_user.json``; its own group-wise split. ``--r22-docs J`` adds the train documents xJ to ``documents_alt``
and caps its alt-only flags on the benign val documents (``_guard_r14_alt.documents_alt``);
``guard_r14_docs.py train --docs 5 --twins --r22-docs K`` retrains the main documents head with them. Neither
was shipped (docs/benchmarks.md, guard, "Round 22b": no candidate met the pre-registered rule on a fresh
evaluator's documents).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _guard_r16 import train_times, user_file_rows

FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "r22_documents.json"
SET, SOURCE = "r22-documents", "bastion:r22-docs"

Row = dict[str, Any]


def r22_doc_rows() -> list[Row]:
    """Every row of the file (train, val, test), retrieved channel."""
    rows = user_file_rows(FILE, source=SOURCE, group_prefix="r22d-", set_name=SET)
    return [{**r, "channel": "retrieved"} for r in rows]


def doc_train(k: int) -> list[Row]:
    """The train documents xK (none for K 0)."""
    return train_times(r22_doc_rows(), k)


def benign_val_docs() -> list[str]:
    """The benign val documents."""
    return [r["text"] for r in r22_doc_rows() if r["split"] == "val" and r["label"] == 0]

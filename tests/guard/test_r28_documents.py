"""Issue 16, round 28 (not shipped): ``data/guard/r28_documents.json`` for ``scripts/guard_r14_docs.py train
--r28-docs K`` (the main documents head retrained with documents that talk to or about AI tools and documents
with a line planted for the AI reader; docs/benchmarks.md, guard, "Round 28"). Pinned here: the file's shape,
splits and subsets, the loader's options, and that the packaged head was not retrained with it."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r28docs

from bastion.guard import load_model

ROOT = Path(__file__).resolve().parents[2]


def test_the_r28_documents_file_has_its_fields_subsets_and_splits() -> None:
    rows = _guard_r28docs.r28_doc_rows()
    assert len(rows) == 600 and all(r["channel"] == "retrieved" for r in rows)
    assert Counter(r["label"] for r in rows) == {0: 360, 1: 240}
    subsets = Counter(str(r["kind"]).split("/", 1)[0] for r in rows)
    assert subsets == {
        "ai_addressed": 170,
        "human_instructions": 80,
        "ordinary": 70,
        "security_discussion": 40,
        "planted_ordinary": 150,
        "planted_ai_doc": 60,
        "planted_foreign": 30,
    }
    assert Counter(r["split"] for r in rows) == {"train": 475, "val": 66, "test": 59}
    groups: dict[str, set[str]] = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in groups.values())
    assert all(600 <= len(r["text"]) <= 3000 for r in rows)


def test_the_loader_options() -> None:
    assert _guard_r28docs.doc_train(0) == []
    assert len(_guard_r28docs.doc_train(2)) == 2 * 475
    assert len(_guard_r28docs.benign_val_docs()) == 36
    assert len(_guard_r28docs.benign_val_docs(plain=True)) == 18


def test_the_packaged_documents_head_was_not_retrained_with_them() -> None:
    """Round 28's candidates raised injected documents caught on three fresh evaluators (+8 to +12) but
    flagged more ordinary documents on two of them: none met its pre-registered rule."""
    model = load_model()
    note = str(model.training["documents"])
    # round 29's shipped head names the file with x0 (its recipe: the r29 pairs, no r28 documents)
    assert re.findall(r"r28_documents\.json train documents x(\d+)", note) == ["0"]
    raw = json.loads((ROOT / "src" / "bastion" / "guard" / "data" / "guard_model.json").read_bytes())
    assert "round 28:" not in raw["training"].get("documents", "")

"""Issue 16, round 29 (not shipped): ``data/guard/r29_pairs.json``, matched pairs of retrieved-channel
documents for ``scripts/guard_r14_docs.py train --r29-pairs K`` (docs/benchmarks.md, guard, "Round 29").
Pinned here: every pair is one document written twice that differs in one span only, one twin of each label
of the same kind and language; twins share a split; the loader's options; the assembler's checks; and that
the packaged head was not retrained with it."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r29pairs

from bastion.guard import load_model

ROOT = Path(__file__).resolve().parents[2]


def _pairs() -> dict[str, dict[int, dict[str, object]]]:
    out: dict[str, dict[int, dict[str, object]]] = {}
    for r in _guard_r29pairs.pair_rows():
        out.setdefault(str(r["group"]), {})[int(r["label"])] = r
    return out


def test_every_pair_is_one_document_written_twice() -> None:
    rows = _guard_r29pairs.pair_rows()
    assert len(rows) == 280 and all(r["channel"] == "retrieved" for r in rows)
    pairs = _pairs()
    assert len(pairs) == 140 and all(sorted(twins) == [0, 1] for twins in pairs.values())
    for twins in pairs.values():
        benign, injected = str(twins[0]["text"]), str(twins[1]["text"])
        assert benign != injected
        assert twins[0]["kind"] == twins[1]["kind"] and twins[0]["lang"] == twins[1]["lang"]
        assert twins[0]["split"] == twins[1]["split"]
        # one contiguous span differs: a common prefix and suffix cover everything else
        head = next(i for i, (a, b) in enumerate(zip(benign, injected, strict=False)) if a != b)
        tail = 0
        while tail < min(len(benign), len(injected)) - head and benign[-1 - tail] == injected[-1 - tail]:
            tail += 1
        assert max(len(benign), len(injected)) - head - tail < 400


def test_the_file_has_its_kinds_languages_and_splits() -> None:
    rows = _guard_r29pairs.pair_rows()
    injected = [r for r in rows if r["label"] == 1]
    assert Counter(str(r["kind"]).split("/", 1)[0] for r in injected) == {"ordinary": 80, "ai_doc": 60}
    assert sum(r["lang"] != "en" for r in injected) == 40
    assert Counter(r["split"] for r in rows) == {"train": 242, "val": 12, "test": 26}
    assert all(500 <= len(str(r["text"])) <= 1300 for r in rows)
    raw = json.loads(_guard_r29pairs.FILE.read_text(encoding="utf-8"))
    assert Counter(r["goal"] for r in raw if r["label"] == 1) == {
        "action": 35,
        "exfiltration": 29,
        "verdict": 28,
        "steer": 25,
        "conceal": 23,
    }
    assert {r["goal"] for r in raw if r["label"] == 0} == {"none"}


def test_the_loader_options() -> None:
    assert _guard_r29pairs.pair_train(0) == []
    assert len(_guard_r29pairs.pair_train(3)) == 3 * 242
    benign = _guard_r29pairs.pair_train(2, benign_only=True)
    assert len(benign) == 2 * 121 and {r["label"] for r in benign} == {0}
    assert {_guard_r29pairs.split_of(f"p-{i}") for i in range(200)} == {"train", "val", "test"}
    assert _guard_r29pairs.split_of("a-001") == _guard_r29pairs.split_of("a-001")


def test_the_assembler_rejects_a_pair_without_both_labels(tmp_path: Path) -> None:
    base = {"lang": "en", "kind": "ordinary/email", "goal": "none", "address": "none", "hiding": "plain"}
    good = [
        {**base, "text": "Hello.", "label": 0, "pair": "x-1"},
        {**base, "text": "Hi.", "label": 1, "pair": "x-1"},
    ]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    out = _guard_r29pairs.assemble([path])
    assert [r["label"] for r in out] == [0, 1] and out[0]["split"] == out[1]["split"]
    path.write_text(json.dumps([{**good[0]}, {**good[1], "label": 0}]), encoding="utf-8")
    with pytest.raises(ValueError, match="labels"):
        _guard_r29pairs.assemble([path])
    path.write_text(json.dumps([good[0], {**good[1], "lang": "de"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="kind or language"):
        _guard_r29pairs.assemble([path])


def test_the_packaged_documents_head_was_retrained_with_them() -> None:
    """Round 29 shipped the main documents head retrained with the pairs x30 (no r28 documents), bias moved
    by -0.3 (F; docs/benchmarks.md, guard, "Round 29c-d"): on four fresh evaluators +7 of 170 injected
    documents, -12 of 360 benign, ordinary unchanged. Its recipe is in its training note."""
    model = load_model()
    note = str(model.training["documents"])
    assert "data/guard/r29_pairs.json train documents x30 (round 29)" in note
    assert "r28_documents.json train documents x0" in note and "then moved by -0.30" in note
    raw = json.loads((ROOT / "src" / "bastion" / "guard" / "data" / "guard_model.json").read_bytes())
    assert raw["documents"]["bias"] == model.documents.bias


@pytest.mark.slow
def test_the_recipe_rebuilds_the_packaged_model_byte_for_byte() -> None:
    """``guard_r14_docs.py train --docs 5 --twins --r29-pairs 30 --bias-delta -0.3`` (before signing)."""
    import train_guard
    from _guard_r14_docs import r14_docs_document

    data = r14_docs_document(train_guard.load_rows(), j=5, twins=True, r29=30, bias_delta=-0.3)
    packaged = (ROOT / "src" / "bastion" / "guard" / "data" / "guard_model.json").read_bytes()
    # digests: a failing comparison of two 2.8 MB strings would take pytest minutes to print
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(packaged).hexdigest()

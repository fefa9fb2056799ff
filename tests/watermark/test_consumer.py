"""The per-consumer API watermark (``bastion.watermark.consumer``): argmax never changes, signals are keyed
per consumer, evidence is MAC'd (tampering and a wrong key are refused) and survives a save/load round trip.
Its power against real surrogates is tested with the theft defence (tests/serve/test_theft.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.errors import IntegrityError, InvalidInput
from bastion.watermark.consumer import ConsumerEvidence, ConsumerWatermark
from bastion.watermark.keys import WatermarkKey

KEY = WatermarkKey.from_secret(b"consumer-watermark-test-key-32by")
OTHER = WatermarkKey.from_secret(b"another-watermark-test-key-32byt")


def _wm(key: WatermarkKey = KEY, n_classes: int = 10) -> ConsumerWatermark:
    return ConsumerWatermark(key, n_features=8, n_classes=n_classes, scale=0.29, cycles=0.5)  # U(0,1)^8


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_apply_keeps_the_top_class_and_moves_probabilities(n_classes: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((500, 8))
    p = rng.dirichlet(np.ones(n_classes) * 0.5, 500)
    q = _wm(n_classes=n_classes).apply("alice", x, p)
    assert np.array_equal(q.argmax(1), p.argmax(1))
    assert np.allclose(q.sum(1), 1.0)
    assert np.abs(q - p).sum(1).mean() > 0.02


def test_signals_are_keyed_per_consumer_and_deterministic() -> None:
    a, again, b, other_key = (
        _wm().signal("alice"),
        _wm().signal("alice"),
        _wm().signal("bob"),
        _wm(OTHER).signal("alice"),
    )
    assert np.array_equal(a.direction, again.direction) and a.phase == again.phase
    assert not np.allclose(a.direction, b.direction)
    assert not np.allclose(a.direction, other_key.direction)
    assert a.alt != a.target


def test_a_model_that_reproduces_the_answers_is_attributed_and_a_clean_one_is_not() -> None:
    rng = np.random.default_rng(1)
    wm = _wm()
    x = rng.random((400, 8))
    clean = rng.dirichlet(np.ones(10) * 0.5, 400)
    marked = wm.apply("alice", x, clean)
    lookup = {r.tobytes(): i for i, r in enumerate(x.astype(np.float32))}

    def copy(rows: np.ndarray) -> np.ndarray:
        return marked[[lookup[r.tobytes()] for r in rows.astype(np.float32)]]

    def innocent(rows: np.ndarray) -> np.ndarray:
        return clean[[lookup[r.tobytes()] for r in rows.astype(np.float32)]]

    consumers = ["alice", "bob", "carol"]
    ref = {c: clean for c in consumers}
    probes = {c: x for c in consumers}
    found = wm.attribute(predict_proba=copy, probes=probes, consumers=consumers, reference=ref)
    assert found.consumer == "alice" and found.p_value < 1e-12
    none = wm.attribute(predict_proba=innocent, probes=probes, consumers=consumers, reference=ref)
    assert none.p_value == 1.0 or none.p_value > 1e-3


def test_two_accounts_combine_where_neither_alone_is_named() -> None:
    """An attacker with two accounts: half its copy's training answers came through alice, half through bob,
    and the copy reproduces them only noisily (Gaussian noise sd 0.23 on the probabilities). Neither alone
    reaches p < 1e-6 (bob z = 4.3, p = 4.1e-5), the pair does (p = 2.4e-7 over 6 pairs); a copy of the clean
    answers with the same noise gives no pair. (sd 0.25 until round 7: each score is now the better of two
    residuals, Bonferroni x 2, which put that pair at p = 1.6e-6.)"""
    rng = np.random.default_rng(1)
    wm = _wm()
    x = rng.random((600, 8))
    clean = rng.dirichlet(np.ones(10) * 0.5, 600)
    answers = clean.copy()
    answers[:200] = wm.apply("alice", x[:200], clean[:200])
    answers[200:400] = wm.apply("bob", x[200:400], clean[200:400])
    noise = np.random.default_rng(9).normal(0.0, 0.23, answers.shape)
    lookup = {r.tobytes(): i for i, r in enumerate(x.astype(np.float32))}

    def copy_of(table: np.ndarray) -> Any:
        return lambda rows: table[[lookup[r.tobytes()] for r in rows.astype(np.float32)]]

    parts = {
        "alice": slice(0, 200),
        "bob": slice(200, 400),
        "carol": slice(400, 500),
        "dave": slice(500, 600),
    }
    probes = {c: x[s] for c, s in parts.items()}
    ref = {c: clean[s] for c, s in parts.items()}
    found = wm.attribute(
        predict_proba=copy_of(answers + noise), probes=probes, consumers=list(parts), reference=ref
    )
    assert found.p_value > 1e-6 and found.group == ("alice", "bob") and found.group_p_value < 1e-6
    assert found.to_dict()["group"] == ["alice", "bob"]
    none = wm.attribute(
        predict_proba=copy_of(clean + noise), probes=probes, consumers=list(parts), reference=ref
    )
    assert none.group_p_value > 1e-3


def test_evidence_is_macd_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.random((40, 8)).astype(np.float32)
    ref = rng.dirichlet(np.ones(10), 40).astype(np.float32)
    ev = _wm().evidence({"alice": (x, ref)})
    ev.check(KEY)
    loaded = ConsumerEvidence.load(ev.save(tmp_path / "ev.json"))
    loaded.check(KEY)
    assert np.array_equal(loaded.consumers["alice"][0], x)
    with pytest.raises(InvalidInput, match="wrong watermark key"):
        loaded.check(OTHER)
    doc = ev.to_doc()
    doc["consumers"]["alice"]["x"][0] += 0.5
    with pytest.raises(IntegrityError):
        ConsumerEvidence.from_doc(doc).check(KEY)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput):
        ConsumerEvidence.load(tmp_path / "bad.json")

"""The watermark waves' amplitudes are settings (``[serve.theft] watermark_eps`` / ``deployment_eps``): lower
ones distort honest clients' probabilities less (attack20g F5: digits calibration error 0.02 -> 0.19 at the
defaults), and the evidence file records the deployment amplitude under its MAC, so attribution undoes the
same wave the gateway added, and an insider who edits it is caught. Files made before it could be set (no
``deployment_eps`` key) keep their MAC and mean the default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.errors import IntegrityError
from bastion.serve.theft import build_defence
from bastion.watermark.consumer import ConsumerEvidence, ConsumerWatermark
from bastion.watermark.keys import WatermarkKey

KEY = WatermarkKey.from_secret(b"round-13-amplitude-test-key-32by")


def _answers(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    logits = 4.0 * rng.normal(size=(n, 5))
    p = np.exp(logits - logits.max(1, keepdims=True))
    return x, p / p.sum(1, keepdims=True)


def _wm(**kw: float) -> ConsumerWatermark:
    return ConsumerWatermark(KEY, n_features=12, n_classes=5, scale=3.0, **kw)


def test_lower_amplitudes_distort_less_and_never_change_the_top_class() -> None:
    x, p = _answers()
    change = {}
    for eps, dep in ((0.25, 0.2), (0.25, 0.0), (0.05, 0.0)):
        out = _wm(eps=eps, deployment_eps=dep).apply("alice", x, p)
        assert (out.argmax(1) == p.argmax(1)).all()
        change[eps, dep] = float(np.abs(out - p).sum(1).mean())
    assert change[0.25, 0.2] > change[0.25, 0.0] > change[0.05, 0.0] > 0


def test_build_defence_passes_the_amplitudes() -> None:
    x, _ = _answers()
    d = build_defence(
        key=KEY,
        reference_x=x,
        reference_y=np.arange(len(x)) % 5,
        n_classes=5,
        watermark_eps=0.1,
        deployment_eps=0,
    )
    assert (d.watermark.eps, d.watermark.deployment_eps) == (0.1, 0.0)


def _evidence(dep: float) -> ConsumerEvidence:
    x, p = _answers(60)
    return _wm(deployment_eps=dep).evidence({"alice": (x, p)})


def test_evidence_records_a_set_amplitude_under_its_mac(tmp_path: Path) -> None:
    ev = ConsumerEvidence.load(_evidence(0.05).save(tmp_path / "e.json"))
    ev.check(KEY)
    assert ev.deployment_eps == 0.05
    doc = json.loads((tmp_path / "e.json").read_text())
    doc["deployment_eps"] = 0.2  # an insider makes attribution undo another wave than the one served
    with pytest.raises(IntegrityError):
        ConsumerEvidence.from_doc(doc).check(KEY)
    del doc["deployment_eps"]
    with pytest.raises(IntegrityError):
        ConsumerEvidence.from_doc(doc).check(KEY)


def test_files_made_before_the_setting_keep_their_mac() -> None:
    doc = _evidence(0.2).to_doc()
    del doc["deployment_eps"]  # the round-13 file format, before the amplitude was recorded
    ev = ConsumerEvidence.from_doc(doc)
    ev.check(KEY)
    assert ev.deployment_eps == 0.2

"""Issue 20 round 14 (cold review attack20g): the deployment wave's carrier class keyed per region.

Wave format 1 put the deployment wave on one fixed non-top class per key. A thief who read the code pools 3
accounts' answers (per-class minimum), finds that class from the answers alone (on the rows with the same top
class its mean probability stands out) and resets its ratio to the top class to the row's median ratio of the
other classes (a renormalised bump leaves their ratios wave-free): the copy's provenance p rose to 0.2-1 at
0.5-2.5 pp fidelity cost. In format 2 (:mod:`bastion.watermark._carrier`) the carrier is a keyed class per
(region, top class): no class stands out, the strip resets nothing that matters, and provenance holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.watermark import test_provenance as tp
from tests.watermark.test_provenance import KEY, _copy, _evidence, _proba, _wm

from bastion.errors import IntegrityError, InvalidInput
from bastion.watermark.consumer import ConsumerEvidence, ConsumerWatermark


@pytest.fixture(scope="module")
def digits() -> Any:
    """test_provenance's digits victim, its 2,000 natural rows and clean answers."""
    return tp.victim.__wrapped__()


def _strip(p: np.ndarray, thr: float = 3.0, floor: float = 0.02) -> np.ndarray:
    """attack20g's strip: per top class, the non-top classes whose mean probability stands out (> thr x the
    median of the others, > floor) get, on those rows, the median ratio to the top of the other classes."""
    top = p.argmax(1)
    r = p / p[np.arange(len(p)), top][:, None]
    for tau in range(p.shape[1]):
        rows = np.where(top == tau)[0]
        others = [j for j in range(p.shape[1]) if j != tau]
        if len(rows) < 5:
            continue
        m = p[rows][:, others].mean(0)
        bumped = [others[i] for i in range(len(others)) if m[i] > max(thr * np.median(m), floor)]
        clean = [j for j in others if j not in bumped]
        for j in bumped:
            r[rows, j] = np.median(r[rows][:, clean], axis=1)
    return np.asarray(r / r.sum(1, keepdims=True))


def test_the_carrier_is_keyed_per_region_never_the_top_class_and_every_class_carries() -> None:
    wm = ConsumerWatermark(KEY, n_features=8, n_classes=10, scale=0.29, cycles=0.5, wave_format=2)
    x = np.random.default_rng(0).random((4000, 8))
    p = np.random.default_rng(1).dirichlet(np.ones(10) * 0.5, 4000)
    top = p.argmax(1)
    dep = wm.deployment
    assert dep.carrier is not None and wm.signal("alice").carrier is None  # consumer waves keep format 1
    carriers = dep.carrier.classes(x, top)
    assert (carriers != top).all()
    for t in range(10):  # per top class, every other class carries the wave somewhere, none on most rows
        counts = np.bincount(carriers[top == t], minlength=10)
        assert counts[t] == 0 and (np.delete(counts, t) > 0).all() and counts.max() < 0.4 * counts.sum()
    assert (wm.apply("alice", x, p).argmax(1) == top).all()
    old = ConsumerWatermark(KEY, n_features=8, n_classes=10, scale=0.29, cycles=0.5)
    assert old.wave_format == 1 and old.deployment.carrier is None
    assert (old.deployment.direction == dep.direction).all() and old.deployment.phase == dep.phase
    with pytest.raises(InvalidInput):
        ConsumerWatermark(KEY, n_features=8, n_classes=10, scale=0.29, wave_format=3)


@pytest.mark.parametrize("fmt", [1, 2])
def test_the_standout_class_strip_of_pooled_answers_no_longer_removes_provenance(
    digits: Any, fmt: int
) -> None:
    """Min of 3 accounts' answers, stripped: format 1 loses provenance (the finding), format 2 keeps it."""
    wm = _wm(digits, wave_format=fmt)
    answers = np.stack([wm.apply(f"jwt:acct{i}", digits.xm, digits.clean(digits.xm)) for i in range(3)])
    pooled = answers.min(axis=0)
    stolen = _proba(_copy(digits, _strip(pooled / pooled.sum(1, keepdims=True))))
    found = _evidence(digits, wm, 3).attribute(key=KEY, predict_proba=stolen)
    if fmt == 1:
        assert found.provenance_p_value > 1e-3, found.provenance_z
    else:
        assert found.provenance_p_value < 1e-6, found.provenance_z


def test_format_2_evidence_round_trips_and_its_format_is_under_the_mac(digits: Any, tmp_path: Path) -> None:
    wm = _wm(digits, wave_format=2)
    path = _evidence(digits, wm, 1).save(tmp_path / "ev.json")
    loaded = ConsumerEvidence.load(path)
    assert loaded.wave_format == 2
    loaded.check(KEY)
    doc = json.loads(path.read_text())
    doc["wave_format"] = 1  # replayed as format 1: the MAC no longer matches
    with pytest.raises(IntegrityError):
        ConsumerEvidence.from_doc(doc).check(KEY)
    del doc["wave_format"]  # a format-1 file has no field: it loads as format 1
    assert ConsumerEvidence.from_doc(doc).wave_format == 1
    old = _evidence(digits, _wm(digits), 1)  # format 1 (the default) keeps its old MAC body
    assert old.wave_format == 1
    old.check(KEY)


def test_the_gateway_defence_serves_format_2_and_exports_it_under_the_mac() -> None:
    """What a deployment serves is format 2 (``build_defence``), and its evidence export says so: the verifier
    rebuilds the same region carriers, and a replay as format 1 fails the MAC."""
    from bastion.serve.theft import TheftPolicy, build_defence

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 3, (4, 6))
    y = rng.integers(0, 4, 400)
    x = centres[y] + rng.normal(0, 1, (400, 6))

    def proba(rows: np.ndarray) -> np.ndarray:
        logits = -((rows[:, None, :] - centres[None]) ** 2).sum(-1) / 4
        e = np.exp(logits - logits.max(1, keepdims=True))
        return np.asarray(e / e.sum(1, keepdims=True))

    g = build_defence(
        key=KEY,
        reference_x=x,
        reference_y=y,
        n_classes=4,
        policy=TheftPolicy(keep_queries=80),
        clock=lambda: 0.0,
    )
    assert g.watermark is not None and g.watermark.wave_format == 2
    assert g.watermark.deployment.carrier is not None
    rows = centres[rng.integers(0, 4, 60)] + rng.normal(0, 1, (60, 6))
    g.respond(consumers=("alice", "addr:10.0.0.9"), x=rows, proba=proba(rows))
    ev = g.evidence(proba)
    assert ev.wave_format == 2 and ev.consumers  # a new account's rows: under pool:newcomers
    doc = json.loads(json.dumps(ev.to_doc()))
    ConsumerEvidence.from_doc(doc).check(KEY)
    doc["wave_format"] = 1
    with pytest.raises(IntegrityError):
        ConsumerEvidence.from_doc(doc).check(KEY)

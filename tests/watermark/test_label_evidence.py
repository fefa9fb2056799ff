"""Label-mark evidence (issue 20): the exact pooled test, two accounts of one attacker, the evidence file and
``bastion watermark verify-labels``'s fail-closed exits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import fisher_exact

from bastion.adversarial.attacks.extraction import extract
from bastion.adversarial.attacks.membership import mlp_shadow_trainer
from bastion.watermark.keys import WatermarkKey, write_key_file
from bastion.watermark.label_evidence import LabelEvidence, pooled_p
from bastion.watermark.labels import LabelMarker

KEY = WatermarkKey.from_secret(b"two-accounts-label-key-32-bytes!")


class Answers:
    """What an attacker holds: the labels it was given, looked up by the exact input (label-only)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
        self.input_shape, self.n_classes, self.label_only = (x.shape[1],), n_classes, True
        self._a = {r.tobytes(): np.eye(n_classes)[y] for r, y in zip(x, labels, strict=True)}

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.stack([self._a[r.tobytes()] for r in np.asarray(x, np.float32)])

    def predict(self, x: Any) -> np.ndarray:
        return self.predict_proba(x).argmax(1)


@pytest.fixture(scope="module")
def cancer() -> Any:
    from bastion.models.data import load_dataset

    d = load_dataset("breast_cancer", seed=0)
    victim = mlp_shadow_trainer(
        input_shape=(d.x_train.shape[1],), n_classes=2, hidden=(64,), epochs=30, batch_size=64, lr=3e-3
    )(d.x_train, d.y_train, 0)
    rng = np.random.default_rng(1)
    dirs = rng.standard_normal((32, d.x_train.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return d, victim, float((d.x_train @ dirs.T).std(axis=0).mean())


def test_pooled_p_is_fisher_for_one_table_and_exact_for_two() -> None:
    for table in [(3, 3, 0, 400), (2, 5, 7, 300), (0, 4, 10, 100)]:
        m_hit, m_n, c_hit, c_n = table
        ref = fisher_exact([[m_hit, m_n - m_hit], [c_hit, c_n - c_hit]], alternative="greater")[1]
        assert pooled_p([table]) == pytest.approx(ref, rel=1e-9)
    # two tables: enumerate the joint null law directly
    from scipy.stats import hypergeom

    a, b = (2, 3, 1, 50), (1, 2, 0, 40)
    pa = hypergeom(53, 3, 3).pmf(np.arange(4))
    pb = hypergeom(42, 1, 2).pmf(np.arange(3))
    brute = sum(pa[i] * pb[j] for i in range(4) for j in range(3) if i + j >= 3)
    assert pooled_p([a, b]) == pytest.approx(brute, rel=1e-9)


@pytest.mark.slow
def test_two_accounts_with_one_and_two_marks_are_not_named_as_a_pair(cancer: Any) -> None:
    """An attacker splits its 426 natural rows across two identities and trains one label-only copy on the
    union. With this key the accounts hold 1 and 2 marks (426 rows at 0.5 %): too few for either alone (the
    per-consumer test needs 3). The pooled pair (3 of 3 marks carried, p = 7.6e-6 over the 45 pairs of 10
    consumers) used to be named, but a member with one carried mark is indistinguishable from an innocent
    consumer whose one mark the copy matches by chance (issue 20 round 6, F7: that is how an honest consumer
    was named beside a thief): a pair is named only when each member carries >= 2 marks and at p < 1e-6
    (``tests/serve/test_theft_r6_b.py`` names a 2 + 2 pair). A copy trained on clean labels names nobody."""
    d, victim, scale = cancer
    # the pair rule under test needs the 1 + 2 marks of the uncapped draw (the cap, round 8, leaves 1 + 1)
    mk = LabelMarker(KEY, n_features=d.x_train.shape[1], n_classes=2, scale=scale, cap=None)
    rng = np.random.default_rng(3)
    for i in range(8):  # honest customers
        xs = d.x_test[rng.integers(0, len(d.x_test), 300)]
        mk.apply(f"customer-{i}", xs, victim.predict_proba(xs))
    pool = d.x_train.astype(np.float32)
    half = rng.permutation(len(pool))
    labels = np.empty(len(pool), np.int64)
    for name, idx in (("mallory-1", half[::2]), ("mallory-2", half[1::2])):
        labels[idx] = mk.apply(name, pool[idx], victim.predict_proba(pool[idx])).argmax(1)
    copies = {}
    for label, ys in (("stolen", labels), ("innocent", victim.predict(pool))):
        res = extract(
            victim=Answers(pool, ys, 2), strategy="knockoff", budgets=[2000], data=pool, eval_x=pool[:5]
        )
        copies[label] = res.surrogate
    ev = mk.evidence()
    found = ev.attribute(key=KEY, predict=copies["stolen"].predict)
    assert [len(ev.consumers[c][0]) for c in ("mallory-1", "mallory-2")] == [1, 2]
    assert found.named == () and found.consumer is None, found.to_dict()
    assert "mallory-1" not in found.tests and "mallory-1" not in found.group  # one mark: never a pair member
    assert found.to_dict()["named"] == []
    clean = ev.attribute(key=KEY, predict=copies["innocent"].predict)
    assert clean.named == () and clean.best_p > 1e-3, clean.to_dict()


def test_evidence_file_round_trips_and_the_cli_fails_closed(cancer: Any, tmp_path: Path) -> None:
    from bastion.cli import run

    d, victim, scale = cancer
    mk = LabelMarker(KEY, n_features=d.x_train.shape[1], n_classes=2, scale=scale)
    mk.apply("alice", d.x_train, victim.predict_proba(d.x_train))
    ev = mk.evidence()
    path = ev.save(tmp_path / "labels.json")
    again = LabelEvidence.load(path)
    again.check(KEY)
    assert again.n_features == d.x_train.shape[1]
    for a, b in zip(ev.consumers["alice"], again.consumers["alice"], strict=True):
        assert np.array_equal(np.asarray(a, np.float32), b)
    other = write_key_file(WatermarkKey.from_secret(b"another-label-key-of-32-bytes!!!"), tmp_path / "o.key")
    right = write_key_file(KEY, tmp_path / "k.key")
    base = ["watermark", "verify-labels", "--model", str(tmp_path / "nowhere"), "--evidence"]
    assert run([*base, str(path), "--key-file", str(other)]) == 2  # wrong key: before any query
    doc = path.read_text().replace('"marked_labels": [', '"marked_labels": [1, ', 1)
    doc = doc.replace('"marked_x": [', '"marked_x": ' + "[" + "0.0, " * d.x_train.shape[1], 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(doc)
    assert run([*base, str(tampered), "--key-file", str(right)]) == 2  # MAC mismatch
    (tmp_path / "junk.json").write_text("{}")
    assert run([*base, str(tmp_path / "junk.json"), "--key-file", str(right)]) == 2
    assert run(["watermark", "verify-labels", "--evidence", str(path), "--key-file", str(right)]) == 2


@pytest.mark.slow
def test_low_confidence_band_is_a_stratum_tested_against_its_own_controls(cancer: Any) -> None:
    """The opt-in band: answers with top probability < 0.9 are marked at 50 % (an independent keyed draw),
    the rest at 0.5 %. With this key mallory's 426 rows get no base mark and 5 of the 13 band rows marked, so
    a copy trained on a random half of its labels (the subset attacker) carries 4 of 5 band marks against 1
    of 8 band controls: p = 0.03 uncorrected (0.25 over 8 consumers), where the base marks alone give nothing,
    but bounded by the band's size
    (the exact test cannot go below 1 / C(13, 5) = 7.8e-4 on 13 rows). A clean copy is not named; the strata
    are MAC'd."""
    import dataclasses

    from bastion.errors import IntegrityError

    d, victim, scale = cancer
    pool = d.x_train.astype(np.float32)
    p = victim.predict_proba(pool)
    half = np.random.default_rng(5).random(len(pool)) < 0.5
    results = {}
    for name, kw in (("base", {}), ("band", {"band": 0.9, "band_rate": 0.5})):
        mk = LabelMarker(KEY, n_features=pool.shape[1], n_classes=2, scale=scale, **kw)
        rng = np.random.default_rng(3)
        for i in range(8):
            xs = d.x_test[rng.integers(0, len(d.x_test), 300)]
            mk.apply(f"customer-{i}", xs, victim.predict_proba(xs))
        out, marked = mk.mark("mallory", pool, p)
        low = p.max(1) < 0.9
        if name == "band":
            assert marked[low].mean() > 0.25 and marked[~low].mean() < 0.02, (marked[low].mean(), low.sum())
        labels = out.argmax(1)
        stolen = Answers(pool[half], labels[half], 2)
        clean = Answers(pool[half], victim.predict(pool[half]), 2)
        ev = mk.evidence()
        for label, table in (("stolen", stolen), ("clean", clean)):
            res = extract(
                victim=table, strategy="knockoff", budgets=[2000], data=pool[half], eval_x=pool[half][:5]
            )
            results[name, label] = ev.attribute(key=KEY, predict=res.surrogate.predict)
        if name == "band":
            assert set(ev.strata) == set(ev.consumers)
            again = LabelEvidence.load(ev.save(_tmp()))
            ms, cs = again.strata["mallory"]
            assert np.array_equal(ms, ev.strata["mallory"][0]) and np.array_equal(cs, ev.strata["mallory"][1])
            flipped = dataclasses.replace(ev, strata={**ev.strata, "mallory": (1 - ms, cs)})
            with pytest.raises(IntegrityError):
                flipped.check(KEY)
    band, base = results["band", "stolen"], results["base", "stolen"]
    assert band.tests["mallory"][:2] == (4, 5) and band.tests["mallory"][4] < 0.05, band.to_dict()
    assert "mallory" not in base.tests  # no base mark at all: nothing to test
    assert results["band", "clean"].named == () and results["band", "clean"].best_p > 1e-3


def _tmp() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp()) / "labels.json"

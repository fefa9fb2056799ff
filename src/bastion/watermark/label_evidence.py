"""Label-mark evidence and the tests that name a consumer (or two accounts of one attacker).

:class:`LabelEvidence` is what a gateway exports (``GET /admin/theft/label-evidence``): per consumer the
rows whose answers carried a label mark (with the wrong label each got) and control rows (with the wrong
label each *would* have got), MAC'd under the watermark key; ``bastion watermark verify-labels`` loads it
and asks a suspect for its labels on those rows.

The tests (:func:`attribute_labels`):

* **per consumer** — one-sided Fisher exact test of the suspect's agreement with the keyed wrong label on
  the consumer's marked rows against its control rows. Marks are chosen by an HMAC of the row's cell,
  independent of the content, so under the null (a suspect not trained on the consumer's answers) marked
  and control rows are exchangeable and the test is exact for any number of classes. Bonferroni over the
  consumers tested.
* **two accounts combined** — an attacker who splits its queries across two identities holds half of each
  identity's marks. The combined statistic is the total marked hits of the pair; under the null each
  consumer's marked hits are independent hypergeometric draws (their keyed selections are independent), so
  the exact p-value is the upper tail of the convolution of the two hypergeometric laws (the exact
  stratified, Mantel–Haenszel-type conditional test; sharper than Fisher's method on two discrete
  p-values, which the result also reports). Bonferroni over every pair of tested consumers (the search
  looks at pairs among the ten best single consumers; the correction counts all pairs, so it stays valid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.watermark.keys import WatermarkKey

LABEL_MARKS = "bastion-label-marks-v1"
LABEL_EVIDENCE_FORMAT = "bastion-label-evidence/v1"
MAX_LABEL_EVIDENCE_BYTES = 256 * 1024 * 1024
PAIR_CANDIDATES = 10
PAIR_MIN_HITS = 2  # a member with one carried mark is indistinguishable from a chance match
NAMED_P = 1e-6  # a consumer (or a pair) is named only at the exit threshold of ``verify-labels``
PAIR_NAMED_P = NAMED_P

Records = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Strata = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LabelAttribution:
    """Which consumer's label marks a suspect carries.

    ``tests``: per consumer (marked hits, marked rows, control hits, control rows, one-sided Fisher p);
    ``consumer`` is the best one if its corrected ``p_value`` < 0.01 (significant, not yet named: see
    :attr:`named`). ``group``/``group_p_value``: the pair
    of consumers whose pooled marks give the smallest corrected p (two accounts of one attacker), with
    ``group_fisher_p`` (Fisher's method on the pair's two p-values, uncorrected) beside it."""

    consumer: str | None
    p_value: float
    tests: dict[str, tuple[int, int, int, int, float]] = field(default_factory=dict)
    group: tuple[str, ...] = ()
    group_p_value: float = 1.0
    group_fisher_p: float = 1.0

    @property
    def named(self) -> tuple[str, ...]:
        """Whom the evidence names, at ``NAMED_P`` (corrected p < 1e-6, the exit threshold of
        ``verify-labels``, so its JSON names exactly whom its exit code attributes): the best single consumer,
        else the best pair, else nobody. A pair is never named beside a single consumer significant at 1 %
        (``consumer``), and only consumers whose marks the copy carries at least ``PAIR_MIN_HITS`` times form
        a pair: pooling a thief with an innocent consumer whose one mark the copy happens to carry gives a
        small p and would accuse the innocent."""
        if self.consumer is not None:
            return (self.consumer,) if self.p_value < NAMED_P else ()
        if self.group and self.group_p_value < PAIR_NAMED_P:
            return self.group
        return ()

    @property
    def best_p(self) -> float:
        """The corrected p-value behind :attr:`named` (the best single's when nobody is named)."""
        if self.consumer is None and self.group and self.group_p_value < PAIR_NAMED_P:
            return self.group_p_value
        return self.p_value

    def to_dict(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "p_value": self.p_value,
            "named": list(self.named),
            "best_p_value": self.best_p,
            "group": list(self.group),
            "group_p_value": self.group_p_value,
            "group_fisher_p": self.group_fisher_p,
            "tests": {c: list(t) for c, t in self.tests.items()},
        }


@dataclass(frozen=True)
class LabelEvidence:
    """Per consumer: marked queries and their wrong labels, control queries and theirs (and, when the marker
    has a low-confidence band, each row's stratum); MAC'd."""

    key_id: str
    n_classes: int
    consumers: dict[str, Records] = field(repr=False)
    mac: str = field(repr=False, default="")
    strata: dict[str, Strata] = field(repr=False, default_factory=dict)

    def _body(self) -> bytes:
        h = hashlib.sha256(f"{LABEL_MARKS}:evidence:{self.key_id}:{self.n_classes}".encode())
        for name in sorted(self.consumers):
            h.update(name.encode() + b"\0")
            arrays = [*self.consumers[name], *self.strata.get(name, ())]
            for arr in arrays:
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr, dtype="<f4" if arr.ndim == 2 else "<i8").tobytes())
        if set(self.strata) - set(self.consumers):
            h.update(b"\0stray strata")
        return h.digest()

    def sign(self, key: WatermarkKey) -> LabelEvidence:
        """This evidence with its MAC under ``key``."""
        mac = hmac.new(key.derive(f"{LABEL_MARKS}:mac"), self._body(), hashlib.sha256).hexdigest()
        return dataclasses.replace(self, mac=mac)

    def check(self, key: WatermarkKey) -> None:
        """Raise unless this evidence was made under ``key`` and is unchanged."""
        if key.key_id != self.key_id:
            raise InvalidInput(f"wrong watermark key: this evidence names key {self.key_id}")
        expected = hmac.new(key.derive(f"{LABEL_MARKS}:mac"), self._body(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.mac):
            raise IntegrityError("the label-mark evidence was altered (MAC mismatch)")

    def attribute(self, *, key: WatermarkKey, predict: Callable[[np.ndarray], Any]) -> LabelAttribution:
        """Check the MAC, then test the suspect (``predict``: rows → labels) against every consumer."""
        self.check(key)
        return attribute_labels(predict=predict, records=self.consumers, strata=self.strata or None)

    @property
    def n_features(self) -> int:
        for mx, _, cx, _ in self.consumers.values():
            for x in (mx, cx):
                if x.ndim == 2 and x.shape[1]:
                    return int(x.shape[1])
        raise InvalidInput("the label-mark evidence holds no rows")

    def to_doc(self) -> dict[str, Any]:
        consumers = {}
        for name, (mx, ml, cx, cl) in self.consumers.items():
            consumers[name] = {
                "features": int(mx.shape[1]) if mx.ndim == 2 else 0,
                "marked_x": np.asarray(mx, np.float32).reshape(-1).tolist(),
                "marked_labels": np.asarray(ml, np.int64).tolist(),
                "control_x": np.asarray(cx, np.float32).reshape(-1).tolist(),
                "control_labels": np.asarray(cl, np.int64).tolist(),
            }
            if name in self.strata:
                ms, cs = self.strata[name]
                consumers[name]["marked_strata"] = np.asarray(ms, np.int64).tolist()
                consumers[name]["control_strata"] = np.asarray(cs, np.int64).tolist()
        return {
            "format": LABEL_EVIDENCE_FORMAT,
            "key_id": self.key_id,
            "n_classes": self.n_classes,
            "consumers": consumers,
            "mac": self.mac,
        }

    @classmethod
    def from_doc(cls, doc: Any, *, where: str = "evidence") -> LabelEvidence:
        try:
            if doc.get("format") != LABEL_EVIDENCE_FORMAT:
                raise InvalidInput(f"{where}: not a label-mark evidence file")
            consumers: dict[str, Records] = {}
            strata: dict[str, Strata] = {}
            for name, item in dict(doc["consumers"]).items():
                nf = int(item["features"])
                ml = np.asarray(item["marked_labels"], dtype=np.int64).reshape(-1)
                cl = np.asarray(item["control_labels"], dtype=np.int64).reshape(-1)
                mx = np.asarray(item["marked_x"], dtype=np.float32).reshape(len(ml), nf)
                cx = np.asarray(item["control_x"], dtype=np.float32).reshape(len(cl), nf)
                consumers[str(name)] = (mx, ml, cx, cl)
                if "marked_strata" in item or "control_strata" in item:
                    ms = np.asarray(item["marked_strata"], dtype=np.int64).reshape(len(ml))
                    cs = np.asarray(item["control_strata"], dtype=np.int64).reshape(len(cl))
                    strata[str(name)] = (ms, cs)
            return cls(
                key_id=str(doc["key_id"]),
                n_classes=int(doc["n_classes"]),
                consumers=consumers,
                mac=str(doc["mac"]),
                strata=strata,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"{where}: not a label-mark evidence file") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        atomic_write(out, json.dumps(self.to_doc()).encode("utf-8"), mode=0o600)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelEvidence:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no label-mark evidence file {src}")
        if src.stat().st_size > MAX_LABEL_EVIDENCE_BYTES:
            raise InvalidInput(f"{src}: evidence file too large")
        try:
            doc = json.loads(src.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{src}: not a label-mark evidence file") from exc
        return cls.from_doc(doc, where=str(src))


def pooled_p(tables: list[tuple[int, int, int, int]]) -> float:
    """Exact one-sided p of the total marked hits over independent ``(marked hits, marked rows, control hits,
    control rows)`` tables: the upper tail of the convolution of their hypergeometric null laws."""
    from scipy.stats import hypergeom

    dist = np.ones(1)
    observed = 0
    for m_hit, m_n, c_hit, c_n in tables:
        if m_n == 0:
            continue
        pmf = hypergeom(m_n + c_n, m_hit + c_hit, m_n).pmf(np.arange(m_n + 1))
        dist = np.convolve(dist, pmf)
        observed += m_hit
    return float(min(1.0, max(0.0, dist[observed:].sum())))


def attribute_labels(
    *,
    predict: Callable[[np.ndarray], Any],
    records: Mapping[str, Records],
    strata: Mapping[str, Strata] | None = None,
    min_marked: int = 3,
    min_control: int = 30,
) -> LabelAttribution:
    """Test the suspect against each consumer's marks and against the best pair of consumers (two accounts
    of one attacker). Consumers with too few rows alone are not tested alone (``min_marked``) but still
    count in a pair when they have ``min_control`` control rows. With ``strata`` (per consumer, the stratum
    of each marked and control row) each stratum is compared with its own controls and the strata are
    pooled exactly (:func:`pooled_p`)."""
    from scipy.stats import combine_pvalues, fisher_exact

    if not records:
        raise InvalidInput("name at least one consumer to test")
    tables: dict[str, list[tuple[int, int, int, int]]] = {}
    for consumer, (mx, ml, cx, cl) in records.items():
        if len(cx) < min_control or len(mx) == 0:
            continue
        m_ok = np.asarray(predict(np.asarray(mx, np.float32))) == ml
        c_ok = np.asarray(predict(np.asarray(cx, np.float32))) == cl
        ms, cs = (strata or {}).get(consumer, (np.zeros(len(mx), np.int64), np.zeros(len(cx), np.int64)))
        if len(ms) != len(mx) or len(cs) != len(cx):
            raise InvalidInput(f"the strata of {consumer} do not match its rows")
        tables[consumer] = [
            (int(m_ok[ms == k].sum()), int((ms == k).sum()), int(c_ok[cs == k].sum()), int((cs == k).sum()))
            for k in np.union1d(ms, cs)
        ]
    tests: dict[str, tuple[int, int, int, int, float]] = {}
    raw: dict[str, float] = {}
    for consumer, parts in tables.items():
        m_hit, m_n, c_hit, c_n = (sum(t[i] for t in parts) for i in range(4))
        if len(parts) == 1:
            table = [[m_hit, m_n - m_hit], [c_hit, c_n - c_hit]]
            raw[consumer] = float(fisher_exact(table, alternative="greater")[1])
        else:
            raw[consumer] = pooled_p(parts)
        if m_n >= min_marked:
            tests[consumer] = (m_hit, m_n, c_hit, c_n, raw[consumer])
    named: str | None = None
    p_value = 1.0
    if tests:
        best = min(tests, key=lambda c: tests[c][4])
        p_value = min(1.0, tests[best][4] * len(tests))
        named = best if p_value < 0.01 else None
    group: tuple[str, ...] = ()
    group_p, group_fisher = 1.0, 1.0
    if len(tables) >= 2:
        pairs = math.comb(len(tables), 2)
        hits = {c: sum(t[0] for t in parts) for c, parts in tables.items()}
        top = sorted((c for c in tables if hits[c] >= PAIR_MIN_HITS), key=lambda c: raw[c])[:PAIR_CANDIDATES]
        for i, a in enumerate(top):
            for b in top[i + 1 :]:
                p = min(1.0, pooled_p([*tables[a], *tables[b]]) * pairs)
                if p < group_p or not group:
                    group, group_p = tuple(sorted((a, b))), p
                    group_fisher = float(combine_pvalues([raw[a], raw[b]], method="fisher")[1])
    return LabelAttribution(
        consumer=named,
        p_value=p_value,
        tests=tests,
        group=group,
        group_p_value=group_p,
        group_fisher_p=group_fisher,
    )


__all__ = [
    "LABEL_EVIDENCE_FORMAT",
    "LABEL_MARKS",
    "LabelAttribution",
    "LabelEvidence",
    "attribute_labels",
    "pooled_p",
]

"""Per-consumer keyed label marks: which customer's *labels* a stolen copy was trained on.

After Szyller et al., "DAWN: Dynamic Adversarial Watermarking of Neural Networks" (ACM MM 2021). For a keyed,
input-dependent fraction ``rate`` (default 0.5 %; the theft defence's 1 %, under the cap below) of each
consumer's queries the answer's top class is
swapped with a keyed wrong label (the scores are swapped with it, so the answer stays self-consistent). A
copy trained on the answers — even on the argmax labels alone — memorises some of those wrong labels, and
:func:`attribute_labels` tests that against chance, naming the consumer.

* **Selection robust to small perturbations.** The decision is ``HMAC(k_sel, consumer ‖ cell(x))`` read as a
  number in ``[0, 1)`` and compared with ``rate``, where ``cell(x)`` is a keyed locality-sensitive hash: the
  floors of ``projections`` keyed random projections of ``x``, each with a keyed offset, in cells ``width``
  wide (``width`` is ``cell`` times the data's typical projection spread). A query and the same query plus
  tiny noise land in the same cell (so get the same answer) unless the noise crosses a cell wall, so an
  attacker who asks twice with tiny noise and drops disagreeing answers catches few marks
  (``benchmarks/bench_extraction.py`` measures that attack). The same input always gets the same answer.
* **The wrong label is the runner-up class** (``runner_up=True``; else a keyed class ``top + offset``).
  Measured on digits, a label-only copy memorises the runner-up swap more often than a random wrong label
  (it sits nearer the copy's own boundary), and the control-set null makes the test exact either way.
* **Per consumer.** The consumer id is part of the HMAC input: each consumer's marks are its own, so a copy
  carries the marks of the consumer whose answers it learned from.
* **A cap per consumer** (``cap``, default 1 %): a cell the keyed draw picks is marked only while the
  consumer's marks stay within ``cap`` x the distinct cells it has sent, so a benign client's cost is bounded
  by construction, not only in expectation: a client re-sending a 143-row split gets at most one marked cell
  (at 0.5 %, two or more came with probability ~0.16, and up to 4 of 118 cells, 4.8 pp, were seen), and one
  below 100 distinct cells none. A picked cell first seen while the cap binds stays unmarked for good
  (answers to a cell never change). The cap's state (the distinct cells, a keyed 8 KiB bitmap; the fate of
  each picked cell) is per process, like the records: with several gateway workers a picked cell can be
  marked by one and refused by another (route a consumer to one worker to keep its answers identical).
* **Verification with a measured null.** For each consumer the marker keeps its marked queries (with the
  wrong label each got) and a control set of its unmarked queries (with the wrong label each *would* have
  got). A suspect not trained on the consumer's answers agrees with the keyed wrong label as often on marked
  as on control rows (the selection is keyed and independent of the content), so a one-sided Fisher exact
  test of marked against control agreement is exact for any number of classes (also two, where DAWN's
  ``1/(k-1)`` chance would be 1). p-values are Bonferroni-corrected over the consumers tested. Under the
  cap, control rows are the cells that were new and *eligible* (the cap not binding) when first seen, the
  same rule that lets a picked cell be marked: every eligible cell is marked with probability ``rate``
  independent of its content and of the rows before it, so marked and control rows stay balanced
  (measured: innocent suspects' p-values under the cap, tests/watermark/test_labels_r8.py).

The evidence file and the tests (per consumer, and pooled over two accounts of one attacker) live in
:mod:`bastion.watermark.label_evidence`.

Deviations from DAWN: the runner-up label; the LSH cell instead of DAWN's image hash of the raw input
(robustness to the query-twice filter); the control-set null instead of chance; the rate is per consumer,
not adaptive.
The keys are HKDF sub-keys of a key-ring watermark key; nothing secret is in this code.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.evict import ValueTable
from bastion.watermark.keys import WatermarkKey
from bastion.watermark.label_evidence import (
    LABEL_MARKS,
    LabelAttribution,
    LabelEvidence,
    attribute_labels,
)

MAX_LABEL_RATE = 0.01


MAX_BAND_RATE = 0.5


# The cap's count of a consumer's distinct cells: a keyed bitmap (linear counting, Whang et al. 1990): exact
# while few bits collide (a 143-row client: ~0.2 expected collisions), an estimate beyond; 8 KiB per consumer
_BITMAP_BITS = 1 << 16


class _Cap:
    """One consumer's mark cap: its distinct cells (a bitmap), its marks, and the fate of every candidate cell
    (the keyed draw said "mark") — marked, or refused while the cap bound, either way for good."""

    __slots__ = ("bitmap", "cells", "decided", "marks")

    def __init__(self) -> None:
        self.bitmap = bytearray(_BITMAP_BITS // 8)
        self.cells = 0  # bits set
        self.marks = 0
        self.decided: OrderedDict[bytes, bool] = OrderedDict()

    def copy(self) -> _Cap:
        out = _Cap()
        out.bitmap, out.cells, out.marks = bytearray(self.bitmap), self.cells, self.marks
        out.decided = OrderedDict(self.decided)
        return out

    def distinct(self) -> float:
        """The distinct cells seen (the linear-counting estimate: the bits set while they are few)."""
        if self.cells >= _BITMAP_BITS:
            return math.inf
        return -_BITMAP_BITS * math.log1p(-self.cells / _BITMAP_BITS)


class _Records:
    __slots__ = ("cap", "control", "marked")

    def __init__(self) -> None:
        self.marked: OrderedDict[bytes, tuple[np.ndarray, int, int]] = OrderedDict()
        self.control: OrderedDict[bytes, tuple[np.ndarray, int, int]] = OrderedDict()
        self.cap = _Cap()


def _worth(rec: _Records) -> tuple[int, int]:
    """What a consumer's records are worth keeping under ``max_consumers``: its marked rows, then its control
    rows and distinct cells."""
    return (len(rec.marked), len(rec.control) + rec.cap.cells)


class LabelMarker:
    """Keyed per-consumer label marks for a gateway: ``apply`` on every answer, ``evidence`` to export.

    Thread-safe; records are in memory (newest ``keep`` marked and ``keep_control`` control rows per
    consumer, at most ``max_consumers`` consumers).

    ``band``/``band_rate`` (off by default): rows the model answers with a top probability below ``band``
    form a second stratum marked at ``band_rate`` (an independent keyed draw). A swap there costs a benign
    client little (the model is unsure, the runner-up is often right) and a copy learns it readily (the row
    sits near its own boundary), so the marks survive label smoothing and training on a subset better;
    verification tests each stratum against its own controls (:func:`pooled_p`: exact). The ``cap`` bounds
    the base stratum's marks only (the band is opt-in and cheap per mark).
    """

    def __init__(
        self,
        key: WatermarkKey | bytes,
        *,
        n_features: int,
        n_classes: int,
        scale: float,
        rate: float = 0.005,
        cell: float = 1.0,
        projections: int = 8,
        keep: int = 5000,
        keep_control: int = 2000,
        max_consumers: int = 4096,
        runner_up: bool = True,
        band: float | None = None,
        band_rate: float = 0.0,
        cap: float | None = MAX_LABEL_RATE,
    ) -> None:
        if isinstance(key, bytes | bytearray):
            key = WatermarkKey.from_secret(bytes(key))
        if not isinstance(key, WatermarkKey):
            raise InvalidInput("LabelMarker needs a WatermarkKey or 32 key bytes")
        if not 0.0 < rate <= MAX_LABEL_RATE or n_classes < 2 or n_features < 1:
            raise InvalidInput(f"LabelMarker needs 0 < rate <= {MAX_LABEL_RATE}, n_classes >= 2")
        if not scale > 0 or not cell > 0 or projections < 1:
            raise InvalidInput("LabelMarker needs scale > 0, cell > 0 and projections >= 1")
        if band is not None and not (0.0 < band <= 1.0 and rate <= band_rate <= MAX_BAND_RATE):
            raise InvalidInput(f"LabelMarker needs 0 < band <= 1 and rate <= band_rate <= {MAX_BAND_RATE}")
        if cap is not None and not rate <= cap <= 1.0:
            raise InvalidInput("LabelMarker needs rate <= cap <= 1 (or no cap)")
        self.cap: float | None = None if cap is None else float(cap)
        self.band: float | None = None if band is None else float(band)
        self.band_rate = 0.0 if band is None else float(band_rate)
        self.key_id = key.key_id
        self._key = key
        self.n_features, self.n_classes, self.rate = int(n_features), int(n_classes), float(rate)
        self.runner_up = bool(runner_up)
        self.width = float(cell) * float(scale)
        self.keep, self.keep_control, self.max_consumers = int(keep), int(keep_control), int(max_consumers)
        seed = int.from_bytes(key.derive(f"{LABEL_MARKS}:lsh"), "big")
        rng = np.random.default_rng(seed)  # secret parameters from the key: an attacker cannot read them
        dirs = rng.standard_normal((int(projections), self.n_features))
        self._dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self._offsets = rng.uniform(0.0, self.width, int(projections))
        self._select = key.derive(f"{LABEL_MARKS}:select")
        self._threshold = int(self.rate * 2**64)
        self._band_threshold = int(self.band_rate * 2**64)
        # the cap evicts the consumer with the fewest records, not the oldest: a flood of throw-away
        # identities cannot push a thief's marks out
        evict_seed = int.from_bytes(key.derive(f"{LABEL_MARKS}:evict")[:8], "big")
        self._records: ValueTable[str, _Records] = ValueTable(_worth, seed=evict_seed)
        self._lock = threading.Lock()

    def cells(self, x: Any) -> np.ndarray:
        """The keyed LSH cell of each row: ``(N, projections)`` integers."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if flat.shape[1] != self.n_features:
            raise InvalidInput(f"rows must have {self.n_features} features")
        return np.floor((flat @ self._dirs.T + self._offsets) / self.width).astype("<i8")

    def strata(self, probs: Any) -> np.ndarray:
        """Each answer's stratum: 1 where the top probability is below ``band`` (when set), else 0."""
        p = np.asarray(probs, dtype=np.float64)
        if self.band is None:
            return np.zeros(len(p), dtype=np.int64)
        return (p.max(axis=1) < self.band).astype(np.int64)

    def decide(
        self, consumer: str, x: Any, strata: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """Per row: marked?, the keyed offset (1..k-1) of its wrong label from the top class, the cell id.
        Stratum-1 rows are drawn at ``band_rate`` from other bits of the same HMAC (independent draws)."""
        tag = consumer.encode("utf-8") + b"\0"
        digests = [hmac.new(self._select, tag + c.tobytes(), hashlib.sha256).digest() for c in self.cells(x)]
        marked = np.array([int.from_bytes(d[:8], "big") < self._threshold for d in digests], dtype=bool)
        if strata is not None and self.band is not None:
            low = np.array([int.from_bytes(d[16:24], "big") < self._band_threshold for d in digests], bool)
            marked = np.where(np.asarray(strata) == 1, low, marked)
        offsets = np.array([1 + int.from_bytes(d[8:16], "big") % (self.n_classes - 1) for d in digests])
        return marked, offsets.astype(np.int64), digests

    def wrong_labels(self, p: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The runner-up class of each row (``runner_up``, default), else the keyed ``top + offset``."""
        if self.runner_up:
            return np.argsort(-p, axis=1, kind="stable")[:, 1]
        return np.asarray((p.argmax(axis=1) + offsets) % self.n_classes)

    def apply(self, consumer: str, x: Any, probs: Any, *, record: bool = True) -> np.ndarray:
        """``probs`` with the top class and the keyed wrong label swapped on the consumer's marked rows."""
        return self.mark(consumer, x, probs, record=record)[0]

    def mark(
        self, consumer: str, x: Any, probs: Any, *, record: bool = True, markable: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`apply`, and which rows were marked. Rows outside ``markable`` (e.g. answered with
        misinformation) are left as they are and not recorded, but count among the consumer's cells for the
        cap (so its marks do not depend on which of its rows another response took)."""
        p = np.array(probs, dtype=np.float64, copy=True)
        if p.ndim != 2 or p.shape[1] != self.n_classes or len(x) != len(p):
            raise InvalidInput("x and probs do not match the label marker's classes")
        ok = np.ones(len(p), bool) if markable is None else np.asarray(markable, dtype=bool).reshape(len(p))
        strata = self.strata(p)
        marked, offsets, digests = self.decide(consumer, x, strata)
        marked, control = self._capped(consumer, marked, digests, strata, ok, commit=record)
        rows = np.arange(len(p))
        top = p.argmax(axis=1)
        wrong = self.wrong_labels(p, offsets)
        hi, lo = p[rows, top].copy(), p[rows, wrong].copy()
        p[rows[marked], top[marked]] = lo[marked]
        p[rows[marked], wrong[marked]] = hi[marked]
        if record:
            flat = np.asarray(x, np.float32).reshape(len(p), -1)
            self._remember(consumer, flat, marked, control, wrong, digests, strata)
        return p, marked

    def _capped(
        self,
        consumer: str,
        marked: np.ndarray,
        digests: list[bytes],
        strata: np.ndarray,
        markable: np.ndarray,
        *,
        commit: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cap on the base stratum's marks (``cap``): a candidate cell (the keyed draw says "mark") seen
        for the first time is marked only while the consumer's marks stay within ``cap`` x its distinct
        cells, else refused for good (a cell's answer never changes: a re-sender would see it). Also which
        unmarked rows may be controls: a base-stratum row only when new and *eligible* under the same rule,
        so marked and control rows are chosen alike (each eligible cell is marked with probability
        ``rate``, independent of its content and of the past: the control-set null stays balanced).
        ``commit=False`` works on a copy of the consumer's state (a dry run)."""
        marked, control = marked & markable, ~marked & markable
        if self.cap is None:
            return marked, control
        with self._lock:
            rec = self._records.get(consumer)
            state = rec.cap if rec is not None else _Cap()
            if not commit:
                state = state.copy()
            elif rec is None:
                rec = self._records[consumer] = _Records()
                state = rec.cap
                self._trim(consumer)
            for i, d in enumerate(digests):
                bit = int.from_bytes(d[24:27], "big") % _BITMAP_BITS
                new = not state.bitmap[bit >> 3] & (1 << (bit & 7))
                if new:
                    state.bitmap[bit >> 3] |= 1 << (bit & 7)
                    state.cells += 1
                if strata[i] != 0 or not markable[i]:  # the opt-in band stratum is not capped
                    continue
                eligible = state.marks + 1 <= math.floor(self.cap * state.distinct() + 1e-9)
                if not marked[i]:
                    control[i] = new and eligible
                    continue
                fate = state.decided.get(d[:16])
                if fate is None:
                    fate = state.decided[d[:16]] = eligible
                    state.marks += int(eligible)
                    while len(state.decided) > 4 * self.keep:
                        state.decided.popitem(last=False)
                marked[i] = fate
                control[i] = False
        return marked, control

    def _trim(self, consumer: str) -> None:
        while len(self._records) > self.max_consumers:
            self._records.evict(keep=consumer)

    def _remember(
        self,
        consumer: str,
        x: np.ndarray,
        marked: np.ndarray,
        control: np.ndarray,
        wrong: np.ndarray,
        digests: list[bytes],
        strata: np.ndarray,
    ) -> None:
        with self._lock:
            rec = self._records.get(consumer)
            if rec is None:
                rec = self._records[consumer] = _Records()
                self._trim(consumer)
            else:
                self._records.move_to_end(consumer)
            for i, cell in enumerate(digests):  # one row per cell and stratum: a cell's rows are not
                dg = cell + bytes([int(strata[i])])  # independent draws
                if not marked[i] and not control[i]:  # refused by the cap, or seen while it bound
                    continue
                table, cap = (rec.marked, self.keep) if marked[i] else (rec.control, self.keep_control)
                if dg in table:
                    continue
                table[dg] = (x[i], int(wrong[i]), int(strata[i]))
                while len(table) > cap:
                    table.popitem(last=False)

    def records(self, consumer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(marked_x, marked_labels, control_x, control_labels)`` recorded for ``consumer``."""
        with self._lock:
            rec = self._records.get(consumer)
            parts = [list(rec.marked.values()), list(rec.control.values())] if rec else [[], []]
        out: list[np.ndarray] = []
        for part in parts:
            out.append(np.stack([r[0] for r in part]) if part else np.zeros((0, self.n_features), np.float32))
            out.append(np.array([r[1] for r in part], dtype=np.int64))
        return out[0], out[1], out[2], out[3]

    def record_strata(self, consumer: str) -> tuple[np.ndarray, np.ndarray]:
        """The stratum of each of :meth:`records`' marked and control rows (same order)."""
        with self._lock:
            rec = self._records.get(consumer)
            parts = [list(rec.marked.values()), list(rec.control.values())] if rec else [[], []]
        ms, cs = (np.array([r[2] for r in part], dtype=np.int64) for part in parts)
        return ms, cs

    def consumers(self) -> list[str]:
        with self._lock:
            return list(self._records)

    def evidence(self, consumers: list[str] | None = None) -> LabelEvidence:
        """The recorded marks of ``consumers`` (default: all), MAC'd under the key."""
        names = self.consumers() if consumers is None else consumers
        ev = LabelEvidence(
            key_id=self.key_id,
            n_classes=self.n_classes,
            consumers={c: self.records(c) for c in names},
            strata={c: self.record_strata(c) for c in names} if self.band is not None else {},
        )
        return ev.sign(self._key)

    def attribute(self, *, predict: Callable[[np.ndarray], Any], consumers: list[str]) -> LabelAttribution:
        """Which of ``consumers`` (if any) a suspect (``predict``: rows → labels) learned labels from."""
        strata = {c: self.record_strata(c) for c in consumers} if self.band is not None else None
        return attribute_labels(
            predict=predict, records={c: self.records(c) for c in consumers}, strata=strata
        )


__all__ = [
    "LABEL_MARKS",
    "LabelAttribution",
    "LabelEvidence",
    "LabelMarker",
    "attribute_labels",
]

"""Region label marks: keyed marks a copy keeps through noisy-label cleaning (opt-in; issue 20).

An isolated wrong label (:class:`bastion.watermark.labels.LabelMarker`) is label noise to a thief who cleans
its training set by cross-validation (drop rows whose label a copy of the other folds disagrees with), and
is removed. :class:`RegionMarker` instead moves the model's decision boundary inside keyed *regions*, the
same way for every input that falls there, so the wrong labels are locally consistent and a cleaner keeps
them:

* A **region** is a keyed coarse LSH cell of ``x`` (floors of ``projections`` keyed projections, ``cell`` x
  the data's projection spread wide) together with the unordered pair ``{top, runner-up}`` of the model's
  answer: one stretch of one class boundary. Only answers whose top probability is below ``band`` (the model
  is unsure: the runner-up is often right, so the benign cost is small) are eligible.
* A region is **marked** for a consumer when ``HMAC(k, consumer ‖ region) < rate``; its keyed **target** is
  one class of the pair (another bit of the same HMAC). On a marked region every eligible answer whose top
  class is the other one is swapped to the target (scores swapped with it): the boundary moves towards the
  other class there, consistently.
* **Verification counts regions, not rows** (answers at inputs of one region are not independent): per
  consumer, every region it visited with at least one would-be-swapped row gives one Bernoulli — does the
  suspect give the target label on the majority of that region's recorded rows? Marked regions against the
  consumer's unmarked (control) regions, one-sided Fisher exact. Marking is a keyed draw independent of the
  rows, so under the null (a suspect not trained on this consumer's answers) marked and control regions are
  exchangeable and the test is exact. Bonferroni over consumers.

``by`` picks the region: ``"pair"`` (default: cell × class pair, keyed target), ``"target"`` (cell × the
runner-up class: the region grows that class) or ``"boundary"`` (the ordered pair top → runner-up anywhere:
one class boundary moves).

**Opt-in, not wired into the gateway; it does not achieve its aim.** Measured
(``benchmarks/bench_extraction.py --attacks labels-region,labels-region-train``, docs/benchmarks.md): against
a plain label-only copy of 1,347 digits rows it names the thief at p = 4.5e-10 (10/11 marked regions vs 1/77
control regions), but 5-fold noisy-label cleaning still removes the marks (p = 1) on both datasets and in
every variant tried at ≤ ~1 % marked mass: natural traffic puts about one would-be-swapped row in each
marked region, so a region's mark is as isolated as a single row's.

The keys are HKDF sub-keys of a key-ring watermark key; nothing secret is in this code.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.evict import ValueTable
from bastion.watermark.keys import WatermarkKey

REGION_MARKS = "bastion-region-marks-v1"
MAX_REGION_RATE = 0.5


@dataclass(frozen=True)
class RegionAttribution:
    """``tests``: per consumer (marked regions hit, marked regions, control regions hit, control regions,
    one-sided Fisher p); ``consumer`` is the best one when its Bonferroni-corrected ``p_value`` < 0.01."""

    consumer: str | None
    p_value: float
    tests: dict[str, tuple[int, int, int, int, float]] = field(default_factory=dict)

    @property
    def named(self) -> tuple[str, ...]:
        return () if self.consumer is None else (self.consumer,)

    @property
    def best_p(self) -> float:
        return self.p_value


class RegionMarker:
    """Keyed per-consumer region marks: ``apply``/``mark`` on every answer, ``attribute`` to test a suspect.

    Thread-safe; per consumer the newest ``keep_rows`` rows of each of at most ``keep_regions`` regions are
    recorded (in memory; at most ``max_consumers`` consumers)."""

    def __init__(
        self,
        key: WatermarkKey | bytes,
        *,
        n_features: int,
        n_classes: int,
        scale: float,
        rate: float = 0.1,
        band: float = 0.9,
        cell: float = 1.0,
        projections: int = 3,
        by: str = "pair",
        keep_regions: int = 20000,
        keep_rows: int = 8,
        max_consumers: int = 4096,
    ) -> None:
        if isinstance(key, bytes | bytearray):
            key = WatermarkKey.from_secret(bytes(key))
        if not isinstance(key, WatermarkKey):
            raise InvalidInput("RegionMarker needs a WatermarkKey or 32 key bytes")
        if not 0.0 < rate <= MAX_REGION_RATE or n_classes < 2 or n_features < 1:
            raise InvalidInput(f"RegionMarker needs 0 < rate <= {MAX_REGION_RATE} and n_classes >= 2")
        if not 0.0 < band <= 1.0 or not scale > 0 or not cell > 0 or projections < 1:
            raise InvalidInput("RegionMarker needs 0 < band <= 1, scale > 0, cell > 0, projections >= 1")
        if by not in ("pair", "target", "boundary"):
            raise InvalidInput("RegionMarker's by must be 'pair', 'target' or 'boundary'")
        self.by = by
        self.key_id = key.key_id
        self.n_features, self.n_classes = int(n_features), int(n_classes)
        self.rate, self.band, self.width = float(rate), float(band), float(cell) * float(scale)
        self.keep_regions, self.keep_rows, self.max_consumers = (
            int(keep_regions),
            int(keep_rows),
            int(max_consumers),
        )
        rng = np.random.default_rng(int.from_bytes(key.derive(f"{REGION_MARKS}:lsh"), "big"))
        dirs = rng.standard_normal((int(projections), self.n_features))
        self._dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self._offsets = rng.uniform(0.0, self.width, int(projections))
        self._select = key.derive(f"{REGION_MARKS}:select")
        self._threshold = int(self.rate * 2**64)
        # consumer -> region digest -> (marked, target, rows)
        # the cap evicts the consumer with the fewest regions recorded, not the oldest: a flood of throw-away
        # identities cannot push a thief's records out
        self._records: ValueTable[str, OrderedDict[bytes, tuple[bool, int, list[np.ndarray]]]] = ValueTable(
            len, seed=int.from_bytes(key.derive(f"{REGION_MARKS}:evict")[:8], "big")
        )
        self._lock = threading.Lock()

    def _flat(self, x: Any) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if flat.shape[1] != self.n_features:
            raise InvalidInput(f"rows must have {self.n_features} features")
        return flat

    def regions(
        self, consumer: str, x: Any, probs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
        """Per row: eligible (unsure and its top class is the region's non-target class), marked region?,
        the region's target class, the region digest (``b""`` for rows in no region)."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_classes or len(p) != len(x):
            raise InvalidInput("x and probs do not match the region marker's classes")
        cells = np.floor((self._flat(x) @ self._dirs.T + self._offsets) / self.width).astype("<i8")
        order = np.argsort(-p, axis=1, kind="stable")
        top, second = order[:, 0], order[:, 1]
        unsure = p.max(axis=1) < self.band
        tag = consumer.encode("utf-8") + b"\0"
        n = len(p)
        eligible, marked = np.zeros(n, bool), np.zeros(n, bool)
        target = np.zeros(n, np.int64)
        digests: list[bytes] = []
        for i in range(n):
            if not unsure[i]:
                digests.append(b"")
                continue
            lo, hi = sorted((int(top[i]), int(second[i])))
            if self.by == "target":  # the region grows its class: unsure rows whose runner-up it is
                lo = hi = int(second[i])
            region = cells[i].tobytes() + lo.to_bytes(2, "big") + hi.to_bytes(2, "big")
            if self.by == "boundary":  # one stretch of the model's boundary: top -> runner-up, anywhere
                lo = hi = int(second[i])
                region = int(top[i]).to_bytes(2, "big") + hi.to_bytes(2, "big")
            d = hmac.new(self._select, tag + region, hashlib.sha256).digest()
            digests.append(d)
            target[i] = hi if d[8] & 1 else lo
            marked[i] = int.from_bytes(d[:8], "big") < self._threshold
            eligible[i] = top[i] != target[i]
        return eligible, marked, target, digests

    def mark(
        self, consumer: str, x: Any, probs: Any, *, record: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``probs`` with the top class and the region's target swapped on eligible rows of marked regions,
        and which rows were swapped."""
        p = np.array(probs, dtype=np.float64, copy=True)
        eligible, marked, target, digests = self.regions(consumer, x, p)
        swap = eligible & marked
        rows = np.flatnonzero(swap)
        top = p.argmax(axis=1)
        hi, lo = p[rows, top[rows]].copy(), p[rows, target[rows]].copy()
        p[rows, top[rows]], p[rows, target[rows]] = lo, hi
        if record:
            self._remember(consumer, self._flat(x).astype(np.float32), eligible, marked, target, digests)
        return p, swap

    def apply(self, consumer: str, x: Any, probs: Any, *, record: bool = True) -> np.ndarray:
        return self.mark(consumer, x, probs, record=record)[0]

    def _remember(
        self,
        consumer: str,
        x: np.ndarray,
        eligible: np.ndarray,
        marked: np.ndarray,
        target: np.ndarray,
        digests: list[bytes],
    ) -> None:
        with self._lock:
            table = self._records.get(consumer)
            if table is None:
                table = self._records[consumer] = OrderedDict()
                while len(self._records) > self.max_consumers:
                    self._records.evict(keep=consumer)
            else:
                self._records.move_to_end(consumer)
            for i in np.flatnonzero(eligible):
                entry = table.get(digests[i])
                if entry is None:
                    entry = table[digests[i]] = (bool(marked[i]), int(target[i]), [])
                    while len(table) > self.keep_regions:
                        table.popitem(last=False)
                rows = entry[2]
                if not any(np.array_equal(r, x[i]) for r in rows):
                    rows.append(x[i])
                    del rows[: -self.keep_rows]

    def consumers(self) -> list[str]:
        with self._lock:
            return list(self._records)

    def region_records(self, consumer: str) -> list[tuple[bool, int, np.ndarray]]:
        """Per recorded region of ``consumer``: marked?, target class, its recorded rows ``(n, features)``."""
        with self._lock:
            table = self._records.get(consumer)
            items = list(table.values()) if table else []
        return [(m, t, np.stack(rows)) for m, t, rows in items]

    def attribute(self, *, predict: Callable[[np.ndarray], Any], consumers: list[str]) -> RegionAttribution:
        """Which of ``consumers`` (if any) a suspect (``predict``: rows → labels) learned marks from."""
        return attribute_regions(predict=predict, records={c: self.region_records(c) for c in consumers})


def attribute_regions(
    *,
    predict: Callable[[np.ndarray], Any],
    records: dict[str, list[tuple[bool, int, np.ndarray]]],
    min_marked: int = 1,
    min_control: int = 10,
) -> RegionAttribution:
    """One Bernoulli per region (suspect gives the target on the majority of the region's rows), marked
    against control regions, one-sided Fisher exact per consumer, Bonferroni over the consumers tested."""
    from scipy.stats import fisher_exact

    if not records:
        raise InvalidInput("name at least one consumer to test")
    tests: dict[str, tuple[int, int, int, int, float]] = {}
    for consumer, regions in records.items():
        m_hit = m_n = c_hit = c_n = 0
        for marked, target, rows in regions:
            hit = int(2 * int((np.asarray(predict(rows)) == target).sum()) > len(rows))
            if marked:
                m_hit, m_n = m_hit + hit, m_n + 1
            else:
                c_hit, c_n = c_hit + hit, c_n + 1
        if m_n < min_marked or c_n < min_control:
            continue
        p = float(fisher_exact([[m_hit, m_n - m_hit], [c_hit, c_n - c_hit]], alternative="greater")[1])
        tests[consumer] = (m_hit, m_n, c_hit, c_n, p)
    if not tests:
        return RegionAttribution(consumer=None, p_value=1.0, tests=tests)
    best = min(tests, key=lambda c: tests[c][4])
    p_value = min(1.0, tests[best][4] * len(tests))
    return RegionAttribution(consumer=best if p_value < 0.01 else None, p_value=p_value, tests=tests)


__all__ = ["REGION_MARKS", "RegionAttribution", "RegionMarker", "attribute_regions"]

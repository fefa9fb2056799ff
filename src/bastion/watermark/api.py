"""API watermark in the spirit of DAWN (Szyller et al., "DAWN: Dynamic Adversarial Watermarking of Neural
Networks", ACM MM 2021).

A gateway passes each answer through :meth:`ApiWatermark.apply`. A keyed, deterministic function of the
query — ``HMAC-SHA256(k_api, round(x / quantum))`` read as a number in ``[0, 1)`` — selects a fraction
``rate`` (default 0.4 %, at most 0.5 %) of queries; for those the answer's top class is swapped with a
watermark label (``HMAC``-chosen among the other ``n_classes - 1`` classes), so the same query always gets
the same answer and a surrogate trained on the API's answers learns the wrong labels. The marked queries
and labels are kept (bounded, newest ``max_records``) and exported as :class:`ApiMarks`, MAC'd with the
key, for :func:`verify_marks`.

Deviations from DAWN: the selection hashes the quantised input instead of DAWN's image hashing; answers keep
the probability profile (the two entries are swapped) instead of a one-hot label; the rate is not
client-adaptive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.models.interface import ModelAdapter
from bastion.watermark.consumer import (
    WAVE_FORMAT,
    Attribution,
    ConsumerEvidence,
    ConsumerSignal,
    ConsumerWatermark,
)
from bastion.watermark.keys import WatermarkKey
from bastion.watermark.verify import Verification, check_compatible, score

API_LABEL = "bastion-api-watermark-v1"
MARKS_FORMAT = "bastion-api-marks/v1"
MAX_RATE = 0.005
MAX_MARKS_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ApiMarks:
    """Marked queries (``x``) and the watermark labels the API gave them, MAC'd under the key."""

    key_id: str
    n_classes: int
    rate: float
    quantum: float
    x: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    mac: str = field(repr=False, default="")

    def _body(self) -> bytes:
        h = hashlib.sha256(MARKS_FORMAT.encode())
        meta = {
            "key_id": self.key_id,
            "n_classes": self.n_classes,
            "rate": self.rate,
            "quantum": self.quantum,
        }
        h.update(json.dumps(meta, sort_keys=True).encode())
        h.update(json.dumps(list(self.x.shape)).encode())
        h.update(np.ascontiguousarray(self.x, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        return h.digest()

    def check(self, key: WatermarkKey) -> None:
        """Raise unless these marks were recorded under ``key`` and are unchanged."""
        if key.key_id != self.key_id:
            raise InvalidInput(
                f"wrong watermark key: these marks were recorded under key {self.key_id}, not {key.key_id}"
            )
        expected = hmac.new(key.derive(f"{API_LABEL}:marks"), self._body(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.mac):
            raise IntegrityError("the API watermark marks were altered (MAC mismatch)")

    def save(self, path: str | os.PathLike[str]) -> Path:
        doc = {
            "format": MARKS_FORMAT,
            "key_id": self.key_id,
            "n_classes": self.n_classes,
            "rate": self.rate,
            "quantum": self.quantum,
            "shape": list(self.x.shape),
            "x": self.x.reshape(-1).tolist(),
            "labels": self.labels.tolist(),
            "mac": self.mac,
        }
        out = Path(path)
        atomic_write(out, json.dumps(doc).encode("utf-8"), mode=0o600)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ApiMarks:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no API watermark marks file {src}")
        if src.stat().st_size > MAX_MARKS_BYTES:
            raise InvalidInput(f"{src}: marks file too large")
        try:
            doc = json.loads(src.read_text(encoding="utf-8"))
            if doc.get("format") != MARKS_FORMAT:
                raise InvalidInput(f"{src}: not an API watermark marks file")
            shape = tuple(int(d) for d in doc["shape"])
            x = np.asarray(doc["x"], dtype=np.float32).reshape(shape)
            labels = np.asarray(doc["labels"], dtype=np.int64)
            marks = cls(
                key_id=str(doc["key_id"]),
                n_classes=int(doc["n_classes"]),
                rate=float(doc["rate"]),
                quantum=float(doc["quantum"]),
                x=x,
                labels=labels,
                mac=str(doc["mac"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{src}: not an API watermark marks file") from exc
        if labels.shape != (x.shape[0],) or x.shape[0] == 0:
            raise InvalidInput(f"{src}: marks and labels do not match")
        return marks


class ApiWatermark:
    """Per-request API watermark for a gateway: ``apply(x, probs)`` on every answer, ``marks()`` to export.

    ``x`` is a batch ``(N, *input_shape)`` and ``probs`` its ``(N, n_classes)`` answer. Thread-safe.
    """

    def __init__(
        self,
        key: WatermarkKey | bytes,
        *,
        rate: float = 0.004,
        quantum: float = 2.0**-10,
        max_records: int = 10_000,
    ) -> None:
        if isinstance(key, bytes | bytearray):
            key = WatermarkKey.from_secret(bytes(key))
        if not isinstance(key, WatermarkKey):
            raise InvalidInput("ApiWatermark needs a WatermarkKey or 32 key bytes")
        if not 0.0 < float(rate) <= MAX_RATE:
            raise InvalidInput(f"rate must be in (0, {MAX_RATE}], got {rate}")
        if not float(quantum) > 0.0:
            raise InvalidInput("quantum must be > 0")
        if int(max_records) < 1:
            raise InvalidInput("max_records must be >= 1")
        self.key_id = key.key_id
        self.rate = float(rate)
        self.quantum = float(quantum)
        self.max_records = int(max_records)
        self._select_key = key.derive(f"{API_LABEL}:select")
        self._marks_key = key.derive(f"{API_LABEL}:marks")
        self._threshold = int(self.rate * 2**64)
        self._records: deque[tuple[bytes, np.ndarray, int]] = deque()
        self._seen: dict[bytes, int] = {}
        self._n_classes: int | None = None
        self._lock = threading.Lock()

    def _digests(self, x: np.ndarray) -> list[bytes]:
        flat = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
        q = np.round(flat / self.quantum).astype("<i8")
        shape = str(tuple(x.shape[1:])).encode()
        return [hmac.new(self._select_key, shape + row.tobytes(), hashlib.sha256).digest() for row in q]

    def _marked(self, digests: list[bytes]) -> np.ndarray:
        return np.array([int.from_bytes(d[:8], "big") < self._threshold for d in digests], dtype=bool)

    @staticmethod
    def _batch(x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 0 or arr.size == 0:
            raise InvalidInput("the API watermark needs a non-empty batch")
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    def is_marked(self, x: Any) -> np.ndarray:
        """Per example of the batch ``x`` (a 1-D ``x`` is one example): does its answer carry the mark?"""
        return self._marked(self._digests(self._batch(x)))

    def apply(self, x: Any, probs: Any) -> np.ndarray:
        """The answer to send: ``probs`` with the top class and the watermark label swapped on marked rows."""
        p = np.array(probs, dtype=np.float32, copy=True)
        if p.ndim != 2 or p.shape[1] < 2:
            raise InvalidInput(f"probs must have shape (N, n_classes), got {p.shape}")
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1 and p.shape[0] == 1 and arr.size:
            arr = arr.reshape(1, -1)
        if arr.ndim < 2 or arr.shape[0] != p.shape[0]:
            raise InvalidInput(f"x does not hold one example per row of probs ({p.shape[0]})")
        k = int(p.shape[1])
        digests = self._digests(arr)
        marked = self._marked(digests)
        if not marked.any():
            return p
        with self._lock:
            if self._n_classes is None:
                self._n_classes = k
            elif self._n_classes != k:
                raise InvalidInput(f"probs has {k} classes, earlier answers had {self._n_classes}")
            for i in np.flatnonzero(marked):
                top = int(p[i].argmax())
                offset = 1 + int.from_bytes(digests[i][8:16], "big") % (k - 1)
                label = (top + offset) % k
                p[i, top], p[i, label] = p[i, label], p[i, top]
                self._remember(digests[i], arr[i].astype(np.float32), label)
        return p

    def _remember(self, digest: bytes, x: np.ndarray, label: int) -> None:
        if digest in self._seen:
            return
        if len(self._records) >= self.max_records:
            old, _, _ = self._records.popleft()
            self._seen.pop(old, None)
        self._records.append((digest, x, label))
        self._seen[digest] = label

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def marks(self) -> ApiMarks:
        """The recorded marked queries (distinct, newest ``max_records``), MAC'd under the key."""
        with self._lock:
            if not self._records or self._n_classes is None:
                raise NotFound("no query has been marked yet")
            x = np.stack([r[1] for r in self._records]).astype(np.float32)
            labels = np.array([r[2] for r in self._records], dtype=np.int64)
            n_classes = self._n_classes
        marks = ApiMarks(
            key_id=self.key_id, n_classes=n_classes, rate=self.rate, quantum=self.quantum, x=x, labels=labels
        )
        mac = hmac.new(self._marks_key, marks._body(), hashlib.sha256).hexdigest()
        return ApiMarks(
            key_id=marks.key_id,
            n_classes=n_classes,
            rate=self.rate,
            quantum=self.quantum,
            x=x,
            labels=labels,
            mac=mac,
        )


def verify_marks(*, model: ModelAdapter, marks: ApiMarks, key: WatermarkKey) -> Verification:
    """Test a suspect surrogate on the API watermark's marked queries; p-value against ``1/(n_classes-1)``."""
    marks.check(key)
    if marks.n_classes < 3:
        raise InvalidInput("API watermark verification needs at least 3 classes (with 2 the label is forced)")
    flat = int(np.prod(marks.x.shape[1:]))
    shape = tuple(int(d) for d in model.input_shape)
    if int(np.prod(shape)) != flat:
        raise InvalidInput(
            f"wrong input shape: the suspect model takes {shape}, the marked queries have {marks.x.shape[1:]}"
        )
    check_compatible(model, input_shape=shape, n_classes=marks.n_classes)
    pred = model.predict(marks.x.reshape((marks.x.shape[0], *shape)))
    chance = 1.0 / (marks.n_classes - 1)
    return score(pred, marks.labels, chance=chance, method="api", key_id=marks.key_id, commitment=None)


__all__ = [
    "WAVE_FORMAT",
    "ApiMarks",
    "ApiWatermark",
    "Attribution",
    "ConsumerEvidence",
    "ConsumerSignal",
    "ConsumerWatermark",
    "verify_marks",
]

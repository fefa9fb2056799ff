"""The signed evidence file a gateway hands the owner for the per-consumer API watermark
(``/admin/theft/evidence``, checked by ``bastion watermark verify --consumers``): each consumer's recorded
queries and the clean model's answers on them, MAC'd under the watermark key. Attribution itself is
:meth:`bastion.watermark.consumer.ConsumerWatermark.attribute` (re-exported there with this class)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.watermark._consumer_stats import Attribution
from bastion.watermark._provenance import DEPLOYMENT_EPS
from bastion.watermark.keys import WatermarkKey

MAX_EVIDENCE_BYTES = 256 * 1024 * 1024
SIGNAL_LABEL = "bastion-api-signal-v1"
# what a watermark and its evidence file share: the evidence rebuilds the watermark from these fields
WAVE_PARAMS = ("n_features", "n_classes", "scale", "eps", "cycles", "deployment_eps", "wave_format")


EVIDENCE_FORMAT = "bastion-consumer-evidence/v1"


@dataclass(frozen=True)
class ConsumerEvidence:
    """What a gateway hands the owner for attribution: per consumer, the queries it sent (whose answers
    carried its signal) and the clean model's answers on them; MAC'd under the watermark key."""

    key_id: str
    n_features: int
    n_classes: int
    scale: float
    eps: float
    cycles: float
    consumers: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    mac: str = field(repr=False, default="")
    deployment_eps: float = DEPLOYMENT_EPS  # absent from files made before it could be set: the default
    wave_format: int = 1  # absent from files made before format 2 (one fixed carrier class per key)

    def _body(self) -> bytes:
        h = hashlib.sha256(EVIDENCE_FORMAT.encode())
        meta = [self.key_id, self.n_features, self.n_classes, self.scale, self.eps, self.cycles]
        if self.deployment_eps != DEPLOYMENT_EPS:  # MAC'd when set; default files keep their old MAC
            meta.append(self.deployment_eps)
        if self.wave_format != 1:  # MAC'd from format 2 on; format-1 files keep their old MAC
            meta.append({"wave_format": self.wave_format})
        h.update(json.dumps(meta).encode())
        for name in sorted(self.consumers):
            x, ref = self.consumers[name]
            h.update(json.dumps([name, list(x.shape), list(ref.shape)]).encode())
            h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
            h.update(np.ascontiguousarray(ref, dtype="<f4").tobytes())
        return h.digest()

    def check(self, key: WatermarkKey) -> None:
        """Raise unless this evidence was made under ``key`` and is unchanged."""
        if key.key_id != self.key_id:
            raise InvalidInput(
                f"wrong watermark key: this evidence names key {self.key_id}, not {key.key_id}"
            )
        expected = hmac.new(key.derive(f"{SIGNAL_LABEL}:evidence"), self._body(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.mac):
            raise IntegrityError("the consumer evidence was altered (MAC mismatch)")

    def attribute(self, *, key: WatermarkKey, predict_proba: Callable[[np.ndarray], Any]) -> Attribution:
        """Check the MAC, then ask which consumer's answers the suspect (``predict_proba``) learned from."""
        from bastion.watermark.consumer import ConsumerWatermark  # it imports this module

        self.check(key)
        wm = ConsumerWatermark(key, **{name: getattr(self, name) for name in WAVE_PARAMS})
        return wm.attribute(
            predict_proba=predict_proba,
            probes={c: x for c, (x, _) in self.consumers.items()},
            consumers=sorted(self.consumers),
            reference={c: r for c, (_, r) in self.consumers.items()},
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": EVIDENCE_FORMAT,
            "key_id": self.key_id,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "scale": self.scale,
            "eps": self.eps,
            "cycles": self.cycles,
            "deployment_eps": self.deployment_eps,
            "wave_format": self.wave_format,
            "consumers": {
                c: {"x": x.reshape(-1).tolist(), "reference": r.reshape(-1).tolist(), "rows": len(x)}
                for c, (x, r) in self.consumers.items()
            },
            "mac": self.mac,
        }

    @classmethod
    def from_doc(cls, doc: Any, *, where: str = "evidence") -> ConsumerEvidence:
        try:
            if doc.get("format") != EVIDENCE_FORMAT:
                raise InvalidInput(f"{where}: not a consumer evidence file")
            nf, nc = int(doc["n_features"]), int(doc["n_classes"])
            consumers = {}
            for name, item in dict(doc["consumers"]).items():
                rows = int(item["rows"])
                x = np.asarray(item["x"], dtype=np.float32).reshape(rows, nf)
                ref = np.asarray(item["reference"], dtype=np.float32).reshape(rows, nc)
                consumers[str(name)] = (x, ref)
            return cls(
                key_id=str(doc["key_id"]),
                n_features=nf,
                n_classes=nc,
                scale=float(doc["scale"]),
                eps=float(doc["eps"]),
                cycles=float(doc["cycles"]),
                consumers=consumers,
                mac=str(doc["mac"]),
                deployment_eps=float(doc.get("deployment_eps", DEPLOYMENT_EPS)),
                wave_format=int(doc.get("wave_format", 1)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"{where}: not a consumer evidence file") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        atomic_write(out, json.dumps(self.to_doc()).encode("utf-8"), mode=0o600)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConsumerEvidence:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no consumer evidence file {src}")
        if src.stat().st_size > MAX_EVIDENCE_BYTES:
            raise InvalidInput(f"{src}: evidence file too large")
        try:
            doc = json.loads(src.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{src}: not a consumer evidence file") from exc
        return cls.from_doc(doc, where=str(src))


__all__ = ["EVIDENCE_FORMAT", "MAX_EVIDENCE_BYTES", "SIGNAL_LABEL", "WAVE_PARAMS", "ConsumerEvidence"]

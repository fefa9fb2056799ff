"""Hunting results: frozen, JSON-serialisable findings and the report that holds them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

SEVERITIES: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


@dataclass(frozen=True)
class Finding:
    """One hunting result: what rule (or the anomaly model) fired, about whom, when, on which events.

    ``key`` names the finding stably across runs (rule id + group + its first event's second), so an
    incremental hunter and the responder act once per finding, and again for a later attack. ``features``
    is filled for anomalies: (feature, value, robust z-score) of the features that drove the score, largest
    first.
    """

    rule_id: str
    title: str
    techniques: tuple[str, ...]
    severity: str
    identity: str
    client: str
    first_seen: float
    last_seen: float
    event_ids: tuple[int, ...]
    count: int
    key: str
    technique_names: tuple[str, ...] = ()
    model: str = "-"
    score: float | None = None
    features: tuple[tuple[str, float, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "techniques": [
                {"id": t, "name": n} for t, n in zip(self.techniques, self.technique_names, strict=False)
            ]
            or [{"id": t, "name": ""} for t in self.techniques],
            "severity": self.severity,
            "identity": self.identity,
            "client": self.client,
            "model": self.model,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "event_ids": list(self.event_ids),
            "count": self.count,
            "key": self.key,
            "score": self.score,
            "features": [{"feature": f, "value": v, "z": z} for f, v, z in self.features],
        }


@dataclass(frozen=True)
class HuntReport:
    """Everything one hunt found, with what it looked at."""

    findings: tuple[Finding, ...]
    events: int
    rules: tuple[str, ...]
    since: float | None
    elapsed_s: float
    anomaly: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "events": self.events,
            "rules": list(self.rules),
            "since": None if self.since is None else _iso(self.since),
            "elapsed_s": round(self.elapsed_s, 3),
            "anomaly": self.anomaly,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


__all__ = ["SEVERITIES", "Finding", "HuntReport"]

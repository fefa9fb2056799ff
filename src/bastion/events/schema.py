"""One event schema for everything security-relevant, exported as JSON lines or OCSF 1.1.

Why OCSF rather than ECS: an OCSF event names *what happened* by class (Authentication 3002, API Activity
6003, Detection Finding 2004) with fixed activity/status/severity enumerations and an ``attacks`` array for
technique ids, so a SIEM (AWS Security Lake, Splunk, Sentinel, OpenSearch all ingest OCSF) can route a
bastion pull, a refused token and a theft flag without per-vendor parsing; ECS is a field-naming convention
tied to Elastic's index mappings and has no class per activity. bastion's own :class:`Event` is deliberately
flat (the columns the hunting rules group and filter on) and maps to OCSF on export, ATLAS technique ids in
``attacks`` (MITRE ATLAS rather than ATT&CK: the threats are against ML systems).

Kinds (``Event.kind``): ``auth-failure``, ``request`` (an admitted gateway request), ``rate-limit``,
``input-reject``, ``monitor-flag``, ``theft-flag``, ``monitor-block``, ``guard-block``, ``guard-flag``,
``drift-alert``, ``pull``, ``push``, ``promote``, ``key-op``, ``reveal``, ``access-change``, ``scan``,
``check``, ``response`` (an action taken by ``bastion respond``), ``invalid-record`` (a gateway record that
does not convert: :mod:`bastion.events.collect`) and ``other``. ``outcome`` is ``ok``,
``denied`` or ``error`` (a denial is any kind with outcome ``denied``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

KINDS: tuple[str, ...] = (
    "auth-failure",
    "request",
    "rate-limit",
    "input-reject",
    "monitor-flag",
    "theft-flag",
    "monitor-block",
    "guard-block",
    "guard-flag",
    "drift-alert",
    "pull",
    "push",
    "promote",
    "key-op",
    "reveal",
    "access-change",
    "scan",
    "check",
    "response",
    "invalid-record",
    "other",
)
OUTCOMES: tuple[str, ...] = ("ok", "denied", "error")
OCSF_VERSION = "1.1.0"

# kind -> (class_uid, category_uid, class_name, activity_id)
_OCSF_CLASS: dict[str, tuple[int, int, str, int]] = {
    "auth-failure": (3002, 3, "Authentication", 1),
    "access-change": (3001, 3, "Account Change", 99),
    "monitor-flag": (2004, 2, "Detection Finding", 1),
    "theft-flag": (2004, 2, "Detection Finding", 1),
    "guard-flag": (2004, 2, "Detection Finding", 1),
    "drift-alert": (2004, 2, "Detection Finding", 1),
    "scan": (2004, 2, "Detection Finding", 1),
    "check": (2004, 2, "Detection Finding", 1),
}
_API_ACTIVITY = {"push": 1, "pull": 2, "request": 2, "reveal": 2, "promote": 3, "key-op": 3}
_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


@dataclass(frozen=True)
class Event:
    """One security-relevant event. ``time`` is unix seconds (UTC); ``id`` is given by the store."""

    time: float
    kind: str
    identity: str = "-"
    client: str = "-"
    model: str = "-"
    action: str = "-"
    outcome: str = "ok"
    status: int = 0
    source: str = "audit"
    severity: str = "info"
    attacks: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    audit_index: int | None = None
    id: int | None = None
    count: int = 1  # how many identical requests this row stands for (a refused-token flood: one row)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("an event stands for at least one occurrence")
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown event outcome {self.outcome!r}")
        if self.severity not in _SEVERITY:
            raise ValueError(f"unknown event severity {self.severity!r}")

    def with_id(self, event_id: int) -> Event:
        return replace(self, id=event_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": _iso(self.time),
            "kind": self.kind,
            "identity": self.identity,
            "client": self.client,
            "model": self.model,
            "action": self.action,
            "outcome": self.outcome,
            "status": self.status,
            "source": self.source,
            "severity": self.severity,
            "attacks": list(self.attacks),
            "audit_index": self.audit_index,
            "count": self.count,
            "details": dict(self.details),
        }

    def to_jsonl(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    def to_ocsf(self, *, technique_names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """This event as OCSF 1.1 (Authentication, Account Change, API Activity or Detection Finding)."""
        class_uid, category_uid, class_name, activity_id = _OCSF_CLASS.get(
            self.kind, (6003, 6, "API Activity", _API_ACTIVITY.get(self.kind, 99))
        )
        if self.kind == "guard-block" or self.kind == "monitor-block":
            class_uid, category_uid, class_name, activity_id = (2004, 2, "Detection Finding", 1)
        names = technique_names or {}
        out: dict[str, Any] = {
            "class_uid": class_uid,
            "class_name": class_name,
            "category_uid": category_uid,
            "activity_id": activity_id,
            "type_uid": class_uid * 100 + activity_id,
            "time": round(self.time * 1000),
            "count": self.count,  # OCSF base attribute: occurrences this event stands for
            "severity_id": _SEVERITY[self.severity],
            "status_id": 1 if self.outcome == "ok" else 2,
            "status": "Success" if self.outcome == "ok" else "Failure",
            "message": f"{self.kind}: {self.action}",
            "metadata": {
                "version": OCSF_VERSION,
                "product": {"name": "bastion", "vendor_name": "bastion"},
                "uid": str(self.id) if self.id is not None else None,
                "log_name": self.source,
                "sequence": self.audit_index,
            },
            "actor": {"user": {"name": self.identity}},
            "src_endpoint": {"ip": self.client} if self.client != "-" else {},
            "api": {"operation": self.action, "response": {"code": self.status}},
            "resources": [{"name": self.model, "type": "ml_model"}] if self.model != "-" else [],
            "unmapped": {"bastion_kind": self.kind, **dict(self.details)},
        }
        if class_uid == 3002:
            out["user"] = {"name": self.identity}
            out["auth_protocol"] = "Bearer"
        if class_uid == 2004:
            out["finding_info"] = {"title": self.kind, "uid": f"{self.source}:{self.audit_index}:{self.kind}"}
        if self.attacks:
            out["attacks"] = [
                {"technique": {"uid": t, "name": names.get(t, t)}, "version": "ATLAS"} for t in self.attacks
            ]
        return out


__all__ = ["KINDS", "OCSF_VERSION", "OUTCOMES", "Event"]

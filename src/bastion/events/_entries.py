"""Audit-log entries → events (:func:`events_from_entry`): what the collector (:mod:`bastion.events.collect`,
whose docstring describes the conversion) and the evidence check (:mod:`bastion.events.verify`) both derive
from an entry — request records expanded one event each, unauthenticated requests one event per client and
decision with its count, remote gateways' records tagged and timed within :data:`REMOTE_SKEW_S` of their
entry, and a record that does not convert one ``invalid-record`` event."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from bastion.events.schema import Event
from bastion.events.store import row_of

EXTRACTION = "AML.T0024.002"
VALID_ACCOUNTS = "AML.T0012"
PROMPT_INJECTION = "AML.T0051"
HOME_GATEWAY = "gateway"  # the actor of the home gateway's (and guard proxy's) entries
#: What a remote gateway may write (``bastion.server.routers.gateway_audit``), under its own identity.
REMOTE_ACTIONS = frozenset({"serve:requests", "serve:monitor-flag", "serve:theft-flag", "serve:drift-alert"})
REMOTE_SOURCE = "remote-gateway"
REMOTE_SKEW_S = 3600.0  # a remote record's time lies at most this long before its entry (and never after)
MAX_COUNT = 1_000_000  # one row's count (a batch covers about a second of one gateway's traffic)
MAX_STATUS = 999
_LATEST = 32503680000.0  # 3000-01-01: a later (or non-finite, or negative) time is not a time
_CONVERSION = (TypeError, ValueError, AttributeError, OverflowError, KeyError, IndexError)


def _time(timestamp: str) -> float:
    try:
        return dt.datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return 0.0


def _outcome(value: str) -> str:
    return value if value in ("ok", "denied", "error") else "ok" if value in ("shadow",) else "error"


def _decision_kind(decision: str, status: int) -> tuple[str, str]:
    """(kind, outcome) of one gateway request record."""
    if decision in ("deny:auth", "deny:rate-auth-failures"):  # refused token, or refused for earlier ones
        return "auth-failure", "denied"
    if decision.startswith("deny:rate"):
        return "rate-limit", "denied"
    if decision in ("deny:monitor", "deny:theft"):
        return "monitor-block", "denied"
    if decision == "deny:output-policy":
        return "guard-block", "denied"
    if decision.startswith("reject:"):
        return "input-reject", "denied"
    if status >= 500:
        return "request", "error"
    return "request", "ok" if status < 400 else "denied"


def _action_kind(action: str) -> str:
    head = action.split(":", 1)[0]
    if action == "auth":
        return "auth-failure"
    if action == "registry:pull":
        return "pull"
    if action == "registry:push":
        return "push"
    if action == "registry:promote":
        return "promote"
    if head == "keys" or action in ("serve:key-release", "serve:approve-release"):
        return "key-op"
    if action == "data:reveal":
        return "reveal"
    if head in ("access", "token"):
        return "access-change"
    if action == "serve:monitor-flag":
        return "monitor-flag"
    if action in ("serve:theft-flag", "serve:theft-evidence"):
        return "theft-flag"
    if action == "serve:drift-alert":
        return "drift-alert"
    if action.startswith("guard:") and action.endswith("-blocked"):
        return "guard-block"
    if action.startswith("guard:"):
        return "guard-flag"
    if action in ("data:scan", "scan:file"):
        return "scan"
    if action in ("audit:run", "governance:check", "watermark:report"):
        return "check"
    if head == "respond":
        return "response"
    return "other"


_ATTACKS = {
    "monitor-flag": (EXTRACTION,),
    "theft-flag": (EXTRACTION,),
    "monitor-block": (EXTRACTION,),
    "guard-block": (PROMPT_INJECTION,),
    "guard-flag": (PROMPT_INJECTION,),
}
_SEVERITY = {"monitor-flag": "high", "theft-flag": "high", "guard-block": "medium", "drift-alert": "medium"}


def _model_of(target: str) -> str:
    return target.rsplit(":", 1)[0] if ":" in target else target


def remote_gateway(entry: Any) -> str | None:
    """The identity of the remote gateway that wrote ``entry``, or None (home gateway, or not a gateway's)."""
    actor = str(entry.actor)
    return actor if entry.action in REMOTE_ACTIONS and actor != HOME_GATEWAY else None


def _finite_time(value: Any) -> float:
    when = float(value)
    if not (math.isfinite(when) and 0.0 <= when < _LATEST):
        raise ValueError(f"time {value!r} is out of range")
    return when


def _checked(event: Event) -> Event:
    """``event`` once it fits the store (its row converts; status and count in range), else ValueError."""
    if not 0 <= event.status <= MAX_STATUS:
        raise ValueError(f"status {event.status} is out of range")
    if event.count > MAX_COUNT:
        raise ValueError(f"count {event.count} is over {MAX_COUNT}")
    _finite_time(event.time)
    row_of(event)
    return event


def _invalid(entry: Any, exc: BaseException, when: float, gateway: str | None, what: str) -> Event:
    """One ``invalid-record`` event for a record (or entry) that does not convert."""
    details: dict[str, Any] = {"error": f"{what}: {type(exc).__name__}: {str(exc)[:200]}"}
    details["target"] = str(entry.target)[:400]
    if gateway is not None:
        details["gateway"] = gateway
    return Event(
        time=when,
        kind="invalid-record",
        model=_model_of(str(entry.target))[:200],
        action=str(entry.action)[:64],
        outcome="error",
        source=REMOTE_SOURCE
        if gateway is not None
        else "gateway"
        if entry.actor == HOME_GATEWAY
        else "audit",
        severity="medium",
        details=details,
        audit_index=int(entry.index),
    )


def events_from_entry(entry: Any) -> list[Event]:
    """The events one audit-log entry stands for (``entry``: :class:`bastion.store.auditlog.AuditEntry`);
    never raises on a malformed entry (see the module docstring: ``invalid-record`` events)."""
    gateway = remote_gateway(entry)
    try:
        when = _finite_time(_time(entry.timestamp))
    except _CONVERSION:
        when = 0.0
    try:
        return [_checked(e) for e in _entry_events(entry, when, gateway)]
    except _CONVERSION as exc:
        return [_invalid(entry, exc, when, gateway, "entry")]


def _entry_events(entry: Any, when: float, gateway: str | None) -> list[Event]:
    details: Mapping[str, Any] = entry.details or {}
    if not isinstance(details, Mapping):
        raise TypeError("the entry's details are not an object")
    index = int(entry.index)
    if entry.action == "serve:requests":
        return list(_requests(entry, details, when, index, gateway))
    kind = _action_kind(entry.action)
    if kind == "other" and entry.outcome == "denied":
        kind = "other"
    identity = str(details.get("identity") or entry.actor)
    if kind == "auth-failure":
        identity = "-"
    outcome = _outcome(entry.outcome)
    model = (
        "-"
        if kind in ("auth-failure", "access-change", "key-op")
        else _model_of(entry.target)  # a remote gateway speaks for the model released to it only
        if gateway is not None
        else str(details.get("model") or _model_of(entry.target))  # the guard proxy names the model asked for
    )
    severity = _SEVERITY.get(kind, "low" if outcome == "denied" else "info")
    kept = {k: v for k, v in details.items() if k not in ("requests", "unauthenticated", "gateway")}
    kept["target"] = entry.target
    if gateway is not None:
        kept["gateway"] = gateway
    client = str(details.get("client") or "-")
    repeat = 1
    if kind == "auth-failure" and details.get("source") not in (None, "", "*"):
        # the server's failed authentications (bastion.server.state.FailureLog): per source address, the first
        # of a window alone, the rest of it as one entry with their count: one event row with that count
        client = str(details["source"])
        repeat = _count(details.get("count", 1))
        with contextlib.suppress(TypeError, ValueError):  # timed at the window's start (within the hour)
            when = min(when, max(when - 3600.0, float(details.get("window_start", when))))
    return [
        Event(
            time=when,
            kind=kind,
            identity=identity[:200],
            client=client[:200],
            model=model[:200],
            action=entry.action[:64],
            outcome=outcome,
            source=REMOTE_SOURCE
            if gateway is not None
            else "gateway"
            if entry.actor == HOME_GATEWAY
            else "audit",
            severity=severity,
            attacks=_ATTACKS.get(kind, ()),
            details=kept,
            audit_index=index,
            count=repeat,
        )
    ]


def _record_time(value: Any, when: float, gateway: str | None) -> float:
    """A record's own time (``ts``), or the entry's; a remote gateway's within REMOTE_SKEW_S before it."""
    ts = _finite_time(value) if value not in (None, "", 0) else when
    return min(when, max(when - REMOTE_SKEW_S, ts)) if gateway is not None else ts


def _tagged(details: dict[str, Any], gateway: str | None) -> dict[str, Any]:
    if gateway is not None:
        details["gateway"] = gateway
    return details


def _request_event(rec: Any, model: str, when: float, index: int, gateway: str | None) -> Event:
    if not isinstance(rec, Mapping):
        raise TypeError("a request record is not an object")
    status = int(rec.get("status", 0) or 0)
    kind, outcome = _decision_kind(str(rec.get("decision", "")), status)
    return _checked(
        Event(
            time=_record_time(rec.get("ts"), when, gateway),
            kind=kind,
            identity=str(rec.get("identity", "-"))[:200],
            client=str(rec.get("client", "-"))[:200],
            model=(model if gateway is not None else str(rec.get("model") or model))[:200],
            action=str(rec.get("path", "serve:request"))[:64],
            outcome=outcome,
            status=status,
            source=REMOTE_SOURCE if gateway is not None else "gateway",
            severity="low" if outcome == "denied" else "info",
            attacks=_ATTACKS.get(kind, ()),
            details=_tagged({"decision": rec.get("decision"), "latency_ms": rec.get("latency_ms")}, gateway),
            audit_index=index,
        )
    )


def _requests(
    entry: Any, details: Mapping[str, Any], when: float, index: int, gateway: str | None
) -> Iterable[Event]:
    """One event per request record; a record that does not convert is one ``invalid-record`` event."""
    model = _model_of(str(entry.target))
    records = details.get("requests") or []
    if not isinstance(records, list):
        raise TypeError("the batch's requests are not a list")
    for position, rec in enumerate(records):
        try:
            yield _request_event(rec, model, when, index, gateway)
        except _CONVERSION as exc:
            yield _invalid(entry, exc, when, gateway, f"request record {position}")
    unauth = details.get("unauthenticated")
    if isinstance(unauth, Mapping) and isinstance(unauth.get("by_client"), list):
        yield from _unauth_by_client(entry, unauth, model, when, index, gateway)
    elif isinstance(unauth, Mapping):  # batches written before the gateway counted by client
        sample = [r for r in unauth.get("sample") or () if isinstance(r, Mapping)]
        for decision, count in dict(unauth.get("by_decision") or {}).items():
            try:
                n = _count(count, floor=0)
                if n:
                    first: Mapping[str, Any] = next((r for r in sample if r.get("decision") == decision), {})
                    client = str(first.get("client", "-"))
                    yield _unauth_event(first, str(decision), client, model, when, index, gateway, count=n)
            except _CONVERSION as exc:
                yield _invalid(entry, exc, when, gateway, f"unauthenticated {str(decision)[:40]!r}")


def _count(value: Any, *, floor: int = 1) -> int:
    """A record's count: at least ``floor``, at most :data:`MAX_COUNT` (a larger claim is capped)."""
    try:
        return min(MAX_COUNT, max(floor, int(value or 0)))
    except (TypeError, ValueError, OverflowError):
        return floor


def _unauth_event(
    rec: Mapping[str, Any],
    decision: str,
    client: str,
    model: str,
    when: float,
    index: int,
    gateway: str | None,
    count: int = 1,
) -> Event:
    kind, outcome = _decision_kind(decision, 401)
    return _checked(
        Event(
            time=_record_time(rec.get("ts"), when, gateway),
            kind=kind,
            client=client[:200],
            model=model[:200],
            action=str(rec.get("path", "serve:request"))[:64],
            outcome=outcome,
            status=int(rec.get("status", 401) or 401),
            source=REMOTE_SOURCE if gateway is not None else "gateway",
            severity="low",
            attacks=(VALID_ACCOUNTS,) if kind == "auth-failure" else (),
            details=_tagged({"decision": decision}, gateway),
            audit_index=index,
            count=count,
        )
    )


def _unauth_by_client(
    entry: Any, unauth: Mapping[str, Any], model: str, when: float, index: int, gateway: str | None
) -> Iterable[Event]:
    """The batch's unauthenticated requests (refused tokens, blocked or rate-limited clients) as one event
    per client and decision with their ``count`` (timed at the first sampled request of that client, else at
    the batch: a batch covers about a second), never one row per request: a flood cannot grow the event
    store, and the rules, the rollup and the evidence check sum the counts. A row that does not convert is
    one ``invalid-record`` event."""
    samples: dict[tuple[str, str], Mapping[str, Any]] = {}
    for rec in unauth.get("sample") or ():
        if isinstance(rec, Mapping):
            samples.setdefault((str(rec.get("client", "-")), str(rec.get("decision", ""))), rec)
    for position, row in enumerate(unauth["by_client"]):
        try:
            if not isinstance(row, Mapping):
                raise TypeError("a by-client row is not an object")
            client, decision = str(row.get("client", "-")), str(row.get("decision", ""))
            count = _count(row.get("count", 0), floor=0)
            if count:
                rec = samples.get((client, decision), {})
                yield _unauth_event(rec, decision, client, model, when, index, gateway, count=count)
        except _CONVERSION as exc:
            yield _invalid(entry, exc, when, gateway, f"by-client row {position}")

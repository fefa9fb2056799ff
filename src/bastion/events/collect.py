"""Collectors: the audit log (registry, keys, access, data, and the gateway's and guard's records) → events.

The gateway and the guard already write every request and security event into the signed audit log (through
:class:`bastion.serve.observability.BatchedAuditWriter`: ``serve:requests`` batches, ``serve:monitor-flag``,
``serve:theft-flag``, ``serve:drift-alert``, ``guard:*``), so one collector reading the log through the
vault's public API (``vault.log_entries(start=…)``) sees gateway events too, without a second trail that could
disagree with the signed one. Each ``serve:requests`` batch is expanded into one event per request record;
its aggregate of unauthenticated requests (bad tokens, floods: counted by client address, with a sample)
becomes one event per client and decision carrying the ``count`` (:attr:`Event.count`), and so do the
server's failed authentications (counted per source address by :class:`bastion.server.state.FailureLog`), so
a token spray at the registry names its one client too. A flood of 10,000 refused tokens in a batch is one
row, not 10,000; the hunting rules (``SUM(count)``), the hourly rollup and the evidence check count it whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from bastion.errors import BastionError
from bastion.events.schema import Event
from bastion.events.store import EventStore

logger = logging.getLogger(__name__)
AUDIT_CURSOR = "audit-log"
EXTRACTION = "AML.T0024.002"
VALID_ACCOUNTS = "AML.T0012"
PROMPT_INJECTION = "AML.T0051"


class LogReader(Protocol):
    """What the collector needs of a vault (``bastion.vault.Vault`` offers it)."""

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> list[Any]: ...


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


def events_from_entry(entry: Any) -> list[Event]:
    """The events one audit-log entry stands for (``entry``: :class:`bastion.store.auditlog.AuditEntry`)."""
    details: Mapping[str, Any] = entry.details or {}
    when = _time(entry.timestamp)
    index = int(entry.index)
    if entry.action == "serve:requests":
        return list(_requests(entry.target, details, when, index))
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
        else str(details.get("model") or _model_of(entry.target))  # the guard proxy names the model asked for
    )
    severity = _SEVERITY.get(kind, "low" if outcome == "denied" else "info")
    kept = {k: v for k, v in details.items() if k not in ("requests", "unauthenticated")}
    kept["target"] = entry.target
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
            source="gateway" if entry.actor == "gateway" else "audit",
            severity=severity,
            attacks=_ATTACKS.get(kind, ()),
            details=kept,
            audit_index=index,
            count=repeat,
        )
    ]


def _requests(target: str, details: Mapping[str, Any], when: float, index: int) -> Iterable[Event]:
    model = _model_of(target)
    for rec in details.get("requests") or ():
        status = int(rec.get("status", 0) or 0)
        kind, outcome = _decision_kind(str(rec.get("decision", "")), status)
        yield Event(
            time=float(rec.get("ts") or when),
            kind=kind,
            identity=str(rec.get("identity", "-"))[:200],
            client=str(rec.get("client", "-"))[:200],
            model=str(rec.get("model") or model)[:200],
            action=str(rec.get("path", "serve:request"))[:64],
            outcome=outcome,
            status=status,
            source="gateway",
            severity="low" if outcome == "denied" else "info",
            attacks=_ATTACKS.get(kind, ()),
            details={"decision": rec.get("decision"), "latency_ms": rec.get("latency_ms")},
            audit_index=index,
        )
    unauth = details.get("unauthenticated")
    if isinstance(unauth, Mapping) and isinstance(unauth.get("by_client"), list):
        yield from _unauth_by_client(unauth, model, when, index)
    elif isinstance(unauth, Mapping):  # batches written before the gateway counted by client
        sample = list(unauth.get("sample") or ())
        for decision, count in dict(unauth.get("by_decision") or {}).items():
            n = _count(count, floor=0)
            if n:
                first: Mapping[str, Any] = next((r for r in sample if r.get("decision") == decision), {})
                client = str(first.get("client", "-"))
                yield _unauth_event(first, str(decision), client, model, when, index, count=n)


def _count(value: Any, *, floor: int = 1) -> int:
    try:
        return max(floor, int(value or 0))
    except (TypeError, ValueError):
        return floor


def _unauth_event(
    rec: Mapping[str, Any], decision: str, client: str, model: str, when: float, index: int, count: int = 1
) -> Event:
    kind, outcome = _decision_kind(decision, 401)
    return Event(
        time=float(rec.get("ts") or when),
        kind=kind,
        client=client[:200],
        model=model[:200],
        action=str(rec.get("path", "serve:request"))[:64],
        outcome=outcome,
        status=int(rec.get("status", 401) or 401),
        source="gateway",
        severity="low",
        attacks=(VALID_ACCOUNTS,) if kind == "auth-failure" else (),
        details={"decision": decision},
        audit_index=index,
        count=count,
    )


def _unauth_by_client(unauth: Mapping[str, Any], model: str, when: float, index: int) -> Iterable[Event]:
    """The batch's unauthenticated requests (refused tokens, blocked or rate-limited clients) as one event
    per client and decision with their ``count`` (timed at the first sampled request of that client, else at
    the batch: a batch covers about a second), never one row per request: a flood cannot grow the event
    store, and the rules, the rollup and the evidence check sum the counts."""
    samples: dict[tuple[str, str], Mapping[str, Any]] = {}
    for rec in unauth.get("sample") or ():
        samples.setdefault((str(rec.get("client", "-")), str(rec.get("decision", ""))), rec)
    for row in unauth["by_client"]:
        client, decision = str(row.get("client", "-")), str(row.get("decision", ""))
        count = _count(row.get("count", 0), floor=0)
        if count:
            rec = samples.get((client, decision), {})
            yield _unauth_event(rec, decision, client, model, when, index, count=count)


class CursorSealer(Protocol):
    """What sealing the cursor needs (:class:`bastion.crypto.seal.RowSealer`)."""

    def seal(self, kind: str, key: str, state: Mapping[str, Any]) -> bytes: ...

    def check(
        self, kind: str, key: str, state: Mapping[str, Any], mac: bytes | None, *, what: str
    ) -> None: ...


_SEAL_KIND = "event-cursor"


def _sealer_of(reader: Any) -> CursorSealer | None:
    """The key ring's row sealer of a local vault opened with the passphrase; None for other readers."""
    try:
        return reader.signer.row_sealer()  # type: ignore[no-any-return]
    except (AttributeError, BastionError, TypeError, ValueError):
        return None


def _log_size(reader: Any) -> int | None:
    try:
        return int(reader.log_head().size)
    except (AttributeError, BastionError):
        return None


def _trusted_start(reader: Any, store: EventStore, sealer: CursorSealer | None) -> int:
    """The cursor, when its seal matches, it is not past the log's signed head and no event lies beyond it;
    otherwise the store is rewound (audit-derived events dropped, rollup rebuilt) and collection restarts at
    entry 0: a home writer without the key ring can neither skip entries nor replay an older cursor."""
    start = store.cursor(AUDIT_CURSOR)
    if sealer is None:
        return start
    top = store.max_audit_index()
    sealed = store.cursor_seal(AUDIT_CURSOR)
    if start == 0 and top is None:
        return 0
    reason = ""
    if sealed is None or sealed[0] != start:
        reason = "is not sealed"
    else:
        try:
            sealer.check(_SEAL_KIND, AUDIT_CURSOR, {"position": start}, sealed[1], what="the event cursor")
        except BastionError:
            reason = "has a seal that does not match"
    size = _log_size(reader)
    if not reason and size is not None and start > size:
        reason = f"is past the signed log's end ({start} > {size})"
    if not reason and top is not None and top >= start:
        reason = f"is behind events already collected (entry {top} >= {start})"
    if not reason:
        return start
    logger.warning("event store: the audit-log cursor %s; re-collecting the audit log from entry 0", reason)
    store.rewind(AUDIT_CURSOR, 0)
    return 0


def collect_audit(
    reader: LogReader,
    store: EventStore,
    *,
    batch: int = 5_000,
    on_events: Callable[[int], None] | None = None,
) -> int:
    """Read the audit log from the store's cursor onwards into events; returns how many entries were read.

    With a reader that holds the key ring (a local vault opened with the passphrase) the cursor is sealed
    (HMAC with the key ring's row sealer) and checked against its seal and the log's signed head before use;
    a cursor that fails is not trusted: the audit-derived events are dropped and re-collected."""
    sealer = _sealer_of(reader)
    start = _trusted_start(reader, store, sealer)
    read = 0
    while True:
        entries = reader.log_entries(start=start, limit=batch)
        if not entries:
            return read
        events: list[Event] = []
        for entry in entries:
            events.extend(events_from_entry(entry))
        start += len(entries)
        read += len(entries)
        seal = None if sealer is None else sealer.seal(_SEAL_KIND, AUDIT_CURSOR, {"position": start})
        store.append(events, cursor=(AUDIT_CURSOR, start), seal=seal)
        if on_events is not None:
            on_events(len(events))
        if len(entries) < batch:
            return read


__all__ = ["AUDIT_CURSOR", "CursorSealer", "LogReader", "collect_audit", "events_from_entry"]

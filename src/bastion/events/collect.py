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

Remote gateways (``bastion serve --server``) write through ``POST /v1/gateway/audit`` under their own
identity (the entry's actor; the home gateway's actor is ``gateway``). Their events carry ``source``
``remote-gateway`` and ``details.gateway`` (that identity), name only the model of the entry's target (the
version released to that gateway; a record's own ``model`` is ignored) and are timed within
:data:`REMOTE_SKEW_S` before the entry (a record's ``ts`` outside that is clamped), so a remote gateway cannot
speak for another model nor move its records in time; the responder never acts on them automatically.

Malformed records never stop collection: a request record, a by-client row or a whole entry that does not
convert (a ``ts`` or ``status`` that is not a number, a record that is not an object, a count beyond
:data:`MAX_COUNT`) becomes one ``invalid-record`` event (severity medium, ``details.error`` says why) and
every other record of the entry is still collected. Entries are converted the same way by the evidence check,
so the invalid-record events verify like any other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from bastion.errors import BastionError
from bastion.events import rowseal
from bastion.events.schema import Event
from bastion.events.store import EventStore, row_of

logger = logging.getLogger(__name__)
AUDIT_CURSOR = "audit-log"
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


def _sealed(
    position: int, totals: tuple[int, int, int, int], digests: Mapping[int, tuple[int, int]]
) -> dict[str, Any]:
    """What the cursor's seal covers: its position, the store's rows, summed count and rollup sum, and the
    table of hourly row digests (:mod:`bastion.events.rowseal`)."""
    rows, total, _least, rolled = totals
    table = rowseal.table_digest(digests)
    return {"position": position, "rows": rows, "total": total, "rollup": rolled, "digests": table}


def _trusted_start(
    reader: Any, store: EventStore, sealer: CursorSealer | None
) -> tuple[int, tuple[int, int, int, int], dict[int, tuple[int, int]]]:
    """The cursor (and the store's totals), when its seal matches the cursor and the store's rows, summed
    count and rollup sum, it is not past the log's signed head and no event lies beyond it; otherwise the
    store is rewound (audit-derived events dropped, rollup rebuilt) and collection restarts at entry 0: a home
    writer without the key ring can neither skip entries, replay an older cursor, nor delete collected rows
    (or lower their counts) without the next collection noticing and re-collecting them."""
    start = store.cursor(AUDIT_CURSOR)
    if sealer is None:
        return start, (0, 0, 1, 0), {}
    top = store.max_audit_index()
    totals = store.totals()
    digests = store.digests()
    sealed = store.cursor_seal(AUDIT_CURSOR)
    if start == 0 and top is None and totals[0] == 0:  # an empty store: collected from entry 0
        return 0, totals, digests
    reason = ""
    if sealed is None or sealed[0] != start:
        reason = "is not sealed"
    else:
        try:
            state = _sealed(start, totals, digests)
            sealer.check(_SEAL_KIND, AUDIT_CURSOR, state, sealed[1], what="the event cursor")
        except BastionError:
            reason = "has a seal that does not match the store (rows deleted, counts edited, or an old seal)"
    if not reason:  # the rows themselves (an UPDATE keeps every total): the recent hours re-read
        reason = rowseal.mismatch(store, rowseal.row_key(sealer), digests, now=time.time())
    if not reason and totals[2] < 1:
        reason = f"sits over an event with count {totals[2]} (every event counts at least once)"
    size = _log_size(reader)
    if not reason and size is not None and start > size:
        reason = f"is past the signed log's end ({start} > {size})"
    if not reason and top is not None and top >= start:
        reason = f"is behind events already collected (entry {top} >= {start})"
    if not reason:
        return start, totals, digests
    logger.warning("event store: the audit-log cursor %s; re-collecting the audit log from entry 0", reason)
    store.rewind(AUDIT_CURSOR, 0)
    return 0, store.totals(), store.digests()


def seal_seeded(reader: Any, store: EventStore) -> None:
    """Vouch for the rows of a store filled with generated events before its first collection (tests and
    benchmarks seed a week of history this way): digest them and seal the cursor at entry 0, with the key
    ring of ``reader`` (a local vault opened with the passphrase). Without it a collection takes rows it did
    not derive from the log for a writer's forgery and drops them (issue 17 attack17d A6)."""
    sealer = _sealer_of(reader)
    if sealer is None:
        raise BastionError("sealing a seeded event store needs a local vault opened with the passphrase")
    if store.cursor(AUDIT_CURSOR) != 0 or store.max_audit_index() is not None:
        raise BastionError("the event store already holds collected events")
    digests = rowseal.scan(store, rowseal.row_key(sealer), since_w=rowseal.first_hour(time.time()))
    seal = sealer.seal(_SEAL_KIND, AUDIT_CURSOR, _sealed(0, store.totals(), digests))
    store.append([], cursor=(AUDIT_CURSOR, 0), seal=seal, digests=digests)


def collect_audit(
    reader: LogReader,
    store: EventStore,
    *,
    batch: int = 5_000,
    on_events: Callable[[int], None] | None = None,
) -> int:
    """Read the audit log from the store's cursor onwards into events; returns how many entries were read.

    With a reader that holds the key ring (a local vault opened with the passphrase) the cursor is sealed
    (HMAC with the key ring's row sealer) together with the store's row count, summed count and rollup sum,
    and checked against its seal, the store and the log's signed head before use; a cursor that fails is not
    trusted: the audit-derived events are dropped and re-collected (so rows deleted from the store, or counts
    lowered, come back at the next collection: ``bastion hunt`` and every ``respond`` tick collect first)."""
    sealer = _sealer_of(reader)
    start, totals, digests = _trusted_start(reader, store, sealer)
    key = None if sealer is None else rowseal.row_key(sealer)
    rows, total, least, rolled = totals
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
        added = sum(e.count for e in events)
        rows, total, rolled = rows + len(events), total + added, rolled + added
        touched = None if key is None else rowseal.added(key, (row_of(e) for e in events), digests)
        digests = {**digests, **(touched or {})}
        state = _sealed(start, (rows, total, least, rolled), digests)
        seal = None if sealer is None else sealer.seal(_SEAL_KIND, AUDIT_CURSOR, state)
        store.append(events, cursor=(AUDIT_CURSOR, start), seal=seal, digests=touched)
        if on_events is not None:
            on_events(len(events))
        if len(entries) < batch:
            return read


__all__ = [
    "AUDIT_CURSOR",
    "HOME_GATEWAY",
    "MAX_COUNT",
    "MAX_STATUS",
    "REMOTE_ACTIONS",
    "REMOTE_SOURCE",
    "CursorSealer",
    "LogReader",
    "collect_audit",
    "events_from_entry",
    "remote_gateway",
    "seal_seeded",
]

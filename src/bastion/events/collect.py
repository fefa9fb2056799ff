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

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bastion.errors import BastionError
from bastion.events import rowseal
from bastion.events._entries import (
    HOME_GATEWAY,
    MAX_COUNT,
    MAX_STATUS,
    REMOTE_ACTIONS,
    REMOTE_SKEW_S,
    REMOTE_SOURCE,
    events_from_entry,
    remote_gateway,
)
from bastion.events.schema import Event
from bastion.events.store import EventStore, row_of

logger = logging.getLogger(__name__)
AUDIT_CURSOR = "audit-log"


class LogReader(Protocol):
    """What the collector needs of a vault (``bastion.vault.Vault`` offers it)."""

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> list[Any]: ...


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
    "REMOTE_SKEW_S",
    "REMOTE_SOURCE",
    "CursorSealer",
    "LogReader",
    "collect_audit",
    "events_from_entry",
    "remote_gateway",
    "seal_seeded",
]

"""Evidence check: are the stored events a finding names exactly what the signed audit log says?

The event store is a derived index kept in the home (``events.db``) or a shared database: whoever can write it
but does not hold the key ring can insert, copy or edit rows, and the hunting rules would fire on them. Before
anything acts on a finding, :class:`EvidenceVerifier` re-derives its evidence from the verified log: the log
is checked once against its signed heads (:meth:`Vault.log_verify`), then for every audit entry the named
events came from (``audit_index``) the multiset of *all* stored events of that entry must equal
:func:`~bastion.events.collect.events_from_entry` of the entry — so a forged row, an edited row, a copied
row (inflating a count) and a row without an audit entry are each refused. The finding's identity, client
and model must appear in that evidence; a client that is a network (a spray grouped by /24 or /64) must
hold every event's client address (IPv4-mapped IPv6 addresses compared as IPv4).

A named event vouches for its whole entry (every event of it is checked), so a threshold finding whose
count is spread over many rows (a day of one-request gateway batches) names one event per entry, and the
hunt counts its evidence as the matching events of the named entries (:mod:`bastion.hunt.sigma`,
:mod:`bastion.hunt.cumulative`); many named entries are read from the log and the store in runs.

Limit: a finding names at most :data:`bastion.hunt.sigma.MAX_ENTRY_IDS` entries; a threshold rule whose count
is spread over more is judged on those it names (severity low, for a person).
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bastion.errors import BastionError
from bastion.events.collect import REMOTE_SOURCE, events_from_entry
from bastion.events.schema import Event
from bastion.events.store import EventStore, row_of

_BULK = 32  # entries from which a check reads the log and the store in runs
_GAP = 256  # entries between two named ones read along rather than starting a new run
_CHUNK = 5_000  # entries per run


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``value`` as one address (an IPv4-mapped IPv6 address as its IPv4 address), or None."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _client_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``value`` as a network written with a prefix (``203.0.113.0/24``), else None."""
    if "/" not in value:
        return None
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:  # ::ffff:a.b.c.0/120 is a.b.c.0/24
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def _inside(clients: set[str], network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Every client (an address) lies inside ``network``."""
    for client in clients:
        address = _address(client)
        if address is None or address.version != network.version or address not in network:
            return False
    return bool(clients)


def _key(event: Event) -> str:
    """An event as the store keeps it (truncated strings, JSON details), without its row id."""
    return json.dumps(row_of(event), sort_keys=True, default=str)


class EvidenceVerifier:
    """Checks findings' events against one vault's audit log (``log``: a local or remote vault)."""

    def __init__(self, *, log: Any, store: EventStore) -> None:
        self._log = log
        self._store = store
        self.store = store
        self._size: int | None = None
        self._failure: str | None = None
        self._entries: dict[int, bool] = {}

    def _verified_size(self) -> int | None:
        if self._size is None and self._failure is None:
            try:
                self._size = int(self._log.log_verify().size)
            except BastionError as exc:
                self._failure = f"the audit log does not verify ({exc})"
        return self._size

    def log_failure(self) -> str | None:
        """Why the audit log does not verify against its signed heads, or None when it does."""
        self._verified_size()
        return self._failure

    def _prefetch(self, indexes: Sequence[int], size: int) -> None:
        """Check many entries at once: runs of nearby entries read from the log and the store in chunks (a
        daily-limit finding names thousands of gateway batches; one query per entry would take minutes)."""
        todo = sorted({i for i in indexes if i not in self._entries})
        if len(todo) < _BULK:
            return
        runs: list[list[int]] = []
        for i in todo:
            if runs and i - runs[-1][1] <= _GAP and i - runs[-1][0] < _CHUNK:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        wanted = set(todo)
        for lo, hi in runs:
            stored: dict[int, Counter[str]] = {}
            for e in self._store.events(audit_range=(lo, hi)):
                stored.setdefault(int(e.audit_index or 0), Counter())[_key(e)] += 1
            entries = self._log.log_entries(start=lo, limit=hi - lo + 1) if 0 <= lo < size else []
            for entry in entries:
                index = int(entry.index)
                if index in wanted and lo <= index <= hi and index < size:
                    derived = Counter(_key(e) for e in events_from_entry(entry))
                    self._entries[index] = derived == stored.get(index, Counter())
            for index in range(lo, hi + 1):
                if index in wanted:
                    self._entries.setdefault(index, False)  # not in the verified log

    def _entry_matches(self, index: int, size: int) -> bool:
        if index not in self._entries:
            entries = self._log.log_entries(start=index, limit=1) if 0 <= index < size else []
            if len(entries) != 1 or int(entries[0].index) != index:
                self._entries[index] = False
            else:
                derived = Counter(_key(e) for e in events_from_entry(entries[0]))
                stored = Counter(_key(e) for e in self._store.events(audit_index=index))
                self._entries[index] = derived == stored
        return self._entries[index]

    def check(
        self, event_ids: Sequence[int], *, identity: str = "-", client: str = "-", model: str = "-"
    ) -> str | None:
        """None when the events are backed by the verified log (and name the targets); else why not."""
        ids = sorted(set(event_ids))
        if not ids:
            return "it names no events"
        events = self._store.events(ids=ids)
        if len(events) != len(ids):
            return "an event it names is not in the event store"
        if any(e.audit_index is None for e in events):
            return "an event it names was not derived from the audit log"
        size = self._verified_size()
        if size is None:
            return self._failure
        indexes = sorted({int(e.audit_index) for e in events if e.audit_index is not None})
        self._prefetch(indexes, size)
        for index in indexes:
            if not self._entry_matches(index, size):
                return f"its events do not match audit entry {index} of the signed log"
        for name, value, seen in (
            ("identity", identity, {e.identity for e in events}),
            ("client", client, {e.client for e in events}),
            ("model", model, {e.model for e in events}),
        ):
            if value in ("-", "") or value in seen:
                continue
            network = _client_network(value) if name == "client" else None
            if network is not None:
                # a network finding (a spray grouped by /24 or /64): every event's client lies inside it
                if not _inside(seen, network):
                    return f"its client network {value!r} does not hold every one of its events' clients"
                continue
            return f"its {name} {value!r} is not in its events"
        return None

    def remote_gateways(self, event_ids: Sequence[int]) -> frozenset[str]:
        """The remote gateways (their identities) whose records any of these events came from: their
        word alone, trusted for their own model's traffic, is never enough to act automatically."""
        events = self._store.events(ids=sorted(set(event_ids)))
        return frozenset(str(e.details.get("gateway", "?")) for e in events if e.source == REMOTE_SOURCE)


__all__ = ["EvidenceVerifier"]

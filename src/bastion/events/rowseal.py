"""Keyed digests of the event store's row contents, per hour of event time: what the collector's sealed cursor
vouches for beyond the store's totals.

The cursor's seal (:mod:`bastion.events.collect`) covered the store's row count, summed count and rollup sum:
an insider who can write ``events.db`` but not the key ring kept all three while rewriting rows in place
(``UPDATE … SET kind='request', client=…``) or moving counts between rows or rollup keys, and the attack's
rows vanished from hunting. Now every row has a MAC (HMAC-SHA256 under a key derived from the key ring's row
sealer, truncated to 40 bits) over the same columns the store holds (:data:`DIGEST_COLUMNS`, every column but
the row id); per hour of event time the store keeps the sum of its rows' MACs and their number, and the
cursor's seal covers a SHA-256 of that whole table. Before trusting the cursor the collector re-reads the
rows of the last :data:`VERIFY_S` (what hunting and the responder read: the watch's hour, the daily rules)
and recomputes their hours' digests, and compares the hourly rollup and window models of those hours with what
the events imply. Any difference (a row edited, moved to another hour, added or removed; a rollup count moved)
rewinds the store and re-collects the log. Without the key a changed row's MAC cannot be computed, so a sum
that still matches is a 2^-40 guess per row set.

Not covered: rows older than :data:`VERIFY_S` are not re-read on every collection (their hours' digests and
the totals are sealed, their contents are checked only by the evidence check of a finding that names them),
so an edit there is seen by nothing that reads only those hours (the anomaly model's week of history).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from bastion.events.store import DIGEST_COLUMNS, WINDOW_S, EventStore

VERIFY_S = 25 * 3600.0  # the rows re-read before each collection: the daily rules' day and the watch's hour
_MAC_BITS = 40
_MOD = 1 << 62  # an hour's digest: the sum of its rows' MACs modulo this (fits a signed 64-bit column)


class KeySource(Protocol):
    def seal(self, kind: str, key: str, state: Mapping[str, Any]) -> bytes: ...


def row_key(sealer: KeySource) -> bytes:
    """The per-row MAC key: the row sealer's HMAC of a fixed label (a PRF output used as a subkey)."""
    return sealer.seal("event-row-key", "events", {"purpose": "row digests"})


def row_mac(key: bytes, values: Iterable[Any]) -> int:
    """The 40-bit MAC of one row's :data:`DIGEST_COLUMNS` values."""
    row = list(values)
    row[0] = float(row[0])  # ts: a REAL column (an event timed by an int reads back as a float)
    text = json.dumps(row, separators=(",", ":"), default=str).encode()
    return int.from_bytes(hmac.digest(key, text, "sha256")[: _MAC_BITS // 8], "big")


def added(
    key: bytes, rows: Iterable[Mapping[str, Any]], digests: Mapping[int, tuple[int, int]]
) -> dict[int, tuple[int, int]]:
    """The hours' digests after appending ``rows`` (:func:`bastion.events.store.row_of` dicts) to ``digests``
    (only the hours they touch)."""
    out: dict[int, tuple[int, int]] = {}
    for r in rows:
        w = int(r["ts"] // WINDOW_S)
        digest, n = out.get(w) or digests.get(w) or (0, 0)
        out[w] = ((digest + row_mac(key, (r[c] for c in DIGEST_COLUMNS))) % _MOD, n + 1)
    return out


def table_digest(digests: Mapping[int, tuple[int, int]]) -> str:
    """SHA-256 over the whole hourly table (what the cursor's seal covers)."""
    text = json.dumps(sorted((w, d, n) for w, (d, n) in digests.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def scan(store: EventStore, key: bytes, *, since_w: int) -> dict[int, tuple[int, int]]:
    """The hourly digests of the store's rows in hours ``since_w`` onwards, computed from the rows."""
    found: dict[int, tuple[int, int]] = {}
    for w, values in store.digest_rows(since_w):
        digest, n = found.get(w, (0, 0))
        found[w] = ((digest + row_mac(key, values)) % _MOD, n + 1)
    return found


def first_hour(now: float) -> int:
    """The first hour (``w``) re-read before a collection at ``now``."""
    return int((now - VERIFY_S) // WINDOW_S)


def mismatch(store: EventStore, key: bytes, digests: Mapping[int, tuple[int, int]], *, now: float) -> str:
    """Why the rows (and rollup) of the last :data:`VERIFY_S` differ from the sealed hourly digests, or ""."""
    since_w = first_hour(now)
    found = scan(store, key, since_w=since_w)
    expected = {w: v for w, v in digests.items() if w >= since_w}
    if found != expected:
        hours = sorted({w for w in {*found, *expected} if found.get(w) != expected.get(w)})
        return (
            f"rows of {len(hours)} hour(s) differ from their sealed digests (edited, moved, added or removed)"
        )
    stored, derived = store.rollup_since(since_w)
    if stored != derived:
        return "the hourly rollup differs from the events it sums"
    return ""


__all__ = ["VERIFY_S", "added", "first_hour", "mismatch", "row_key", "row_mac", "scan", "table_digest"]

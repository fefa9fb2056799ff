"""Response state for the gateway: blocked/throttled clients and identities, quarantined models, guard mode.

One JSON document at ``HOME/respond/state.json``, preceded on its first line by an Ed25519 signature
(base64) over the JSON bytes, made with the home's tree-head key (the key that signs the audit log's heads),
so whoever can write the home's files but not sign with its key cannot unblock a client or lift a quarantine:
:func:`load_verified` checks the signature over exactly the bytes it parses (read once) and raises
``IntegrityError`` otherwise.
A gateway reads it with the public key only (:func:`load_verified`), and so does the vault before a pull (a
quarantined model is not pulled): that is why it lives in ``store`` (below both; ``bastion.respond.state``
re-exports it). The document also records the finding keys already handled, so a restarted
``respond --watch`` does not act twice.

Deleting or rolling back the file: a signature alone cannot tell the newest state from an older signed one,
nor an absent file from no state. Every save is therefore recorded in the signed audit log
(:data:`STATE_ACTION` with the serial, the digest of the signed bytes and the blocks themselves,
:func:`state_record`), and :func:`load_current` (what the gateway's gate, the vault before a pull and
``log verify`` read) refuses a file that is missing, or older than (or different from) the latest state
the log records. The owner rebuilds a lost file from that record (``bastion respond --restore-state``).
Those records are believed only after :class:`LoggedState` checks them against the log's signed heads, and a
save logs only what changed (folded back by the readers). The module stays one over ~400 lines on purpose: the
file format, the record format and the fold are one invariant (what is signed equals what is logged).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bastion.errors import IntegrityError
from bastion.files import atomic_write

STATE_DIR = "respond"
STATE_FILE = "state.json"
STATE_ACTION = "respond:state"  # the audit-log entry written after every save
FORMAT = "bastion-response-state/v1"
SECTIONS: tuple[str, ...] = (
    "blocked_clients",
    "throttled_clients",
    "blocked_identities",
    "quarantined_models",
)


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...

    def verify(self, data: bytes, signature: bytes) -> None: ...


@dataclass(frozen=True)
class ResponseState:
    """Entries map a client / identity / ``model:version`` to why (finding key) and when."""

    blocked_clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    throttled_clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    blocked_identities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    quarantined_models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    guard_mode: str | None = None
    handled: tuple[str, ...] = ()
    serial: int = 0
    chain: int = 0  # saves logged as a change since the last full record (signed, so it cannot be reset)
    # not serialised: set by save(), what changed since serial ``changes_base`` (what the log record carries)
    changes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False, repr=False)
    changes_base: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "serial": self.serial,
            "chain": self.chain,
            "guard_mode": self.guard_mode,
            "handled": list(self.handled),
            **{s: {k: dict(v) for k, v in getattr(self, s).items()} for s in SECTIONS},
        }

    def with_entry(self, section: str, key: str, why: Mapping[str, Any] | None) -> ResponseState:
        """A copy with ``key`` added to (``why`` given) or removed from (``why=None``) ``section``."""
        entries = dict(getattr(self, section))
        if why is None:
            entries.pop(key, None)
        else:
            entries[key] = dict(why)
        return replace(self, **{section: entries})  # type: ignore[arg-type]

    def client_blocked(self, client: str, *, now: float | None = None) -> bool:
        """``client`` is blocked (an entry with ``until`` in the past has expired).

        An entry may name one address or a network (``198.51.100.0/24``, ``2001:db8::/64``: what a spray
        finding grouped by prefix blocks); an address inside a blocked network is blocked. IPv4-mapped IPv6
        (``::ffff:a.b.c.d``: how a dual-stack listener or a proxy reports an IPv4 client) is compared as
        IPv4, on both sides: a block of ``a.b.c.0/24`` covers ``::ffff:a.b.c.9`` and the reverse."""
        return _matches(self.blocked_clients, self._blocked_networks, client, now)

    def client_throttled(self, client: str, *, now: float | None = None) -> bool:
        return _matches(self.throttled_clients, self._throttled_networks, client, now)

    @functools.cached_property
    def _blocked_networks(self) -> _Index:
        return _networks(self.blocked_clients)

    @functools.cached_property
    def _throttled_networks(self) -> _Index:
        return _networks(self.throttled_clients)

    def is_blocked(self, *, client: str = "-", identity: str = "-", model: str = "-") -> bool:
        return (
            self.client_blocked(client)
            or identity in self.blocked_identities
            or model in self.quarantined_models
            or model.split(":", 1)[0] in self.quarantined_models
        )


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (folded single address -> entry keys, networks wider than one address -> entry key)
_Index = tuple[Mapping[str, tuple[str, ...]], tuple[tuple[_Network, str], ...]]


def _folded(network: _Network) -> _Network:
    """An IPv4-mapped IPv6 network (``::ffff:a.b.c.0/120``) as the IPv4 network it stands for."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def _parsed(value: str) -> _Network | None:
    try:
        return _folded(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        return None


def _networks(entries: Mapping[str, Mapping[str, Any]]) -> _Index:
    """The entries that name an address or a network, folded (IPv4-mapped IPv6 as IPv4), parsed once per
    state: single addresses in a map (one lookup per request), wider networks in a tuple."""
    single: dict[str, tuple[str, ...]] = {}
    nets = []
    for key in entries:
        network = _parsed(key)
        if network is None:
            continue  # not an address: matched only exactly
        if network.num_addresses == 1:
            text = str(network.network_address)
            single[text] = (*single.get(text, ()), key)
        else:
            nets.append((network, key))
    return single, tuple(nets)


def _matches(entries: Mapping[str, Mapping[str, Any]], index: _Index, client: str, now: float | None) -> bool:
    if _live(entries.get(client), now):
        return True
    single, networks = index
    if not single and not networks:
        return False
    network = _parsed(client)
    if network is None:
        return False
    if network.num_addresses == 1 and any(
        _live(entries.get(key), now) for key in single.get(str(network.network_address), ())
    ):
        return True
    return any(
        network.version == net.version and network.subnet_of(net) and _live(entries.get(key), now)  # type: ignore[arg-type]
        for net, key in networks
    )


def _live(entry: Mapping[str, Any] | None, now: float | None) -> bool:
    if entry is None:
        return False
    until = entry.get("until")
    if until is None:
        return True
    try:
        return float(until) > (time.time() if now is None else now)
    except (TypeError, ValueError):
        return True  # a malformed expiry (signed, so ours) never lifts a block


def state_path(home: Path) -> Path:
    return home / STATE_DIR / STATE_FILE


def _parse(data: bytes) -> ResponseState:
    try:
        obj = json.loads(data)
        if obj.get("format") != FORMAT:
            raise ValueError("format")
        sections = {s: {str(k): dict(v) for k, v in obj[s].items()} for s in SECTIONS}
        return ResponseState(
            blocked_clients=sections["blocked_clients"],
            throttled_clients=sections["throttled_clients"],
            blocked_identities=sections["blocked_identities"],
            quarantined_models=sections["quarantined_models"],
            guard_mode=obj.get("guard_mode"),
            handled=tuple(str(h) for h in obj.get("handled", [])),
            serial=int(obj["serial"]),
            chain=int(obj.get("chain", 0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError("response state is malformed") from exc


def load_verified(path: Path, verifier: Any) -> ResponseState:
    """Read and verify the state (empty when none was written); ``verifier`` has ``verify(data, sig)``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ResponseState()
    return verify_signed(raw, verifier)


def verify_signed(raw: bytes, verifier: Any) -> ResponseState:
    """The state in ``raw`` (the file's bytes: signature line, then the JSON) after checking its signature
    over exactly those bytes (IntegrityError otherwise): how a remote gateway checks the server's copy."""
    try:
        line, data = raw.split(b"\n", 1)
        verifier.verify(data, base64.b64decode(line, validate=True))
    except Exception as exc:  # missing or wrong signature: one opaque failure
        raise IntegrityError("response state failed its signature check") from exc
    return _parse(data)


def _data(state: ResponseState) -> bytes:
    return json.dumps(state.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def state_digest(state: ResponseState) -> str:
    """SHA-256 (hex) of the bytes the state's signature covers."""
    return hashlib.sha256(_data(state)).hexdigest()


def _entries_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of what restore rebuilds (the sections and the guard mode): checks a folded chain."""
    body = {"guard_mode": record.get("guard_mode"), **{s: record.get(s, {}) for s in SECTIONS}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def state_record(state: ResponseState) -> dict[str, Any]:
    """The details of the :data:`STATE_ACTION` audit entry for a saved state.

    A full record (everything but ``handled``) when ``state.chain`` is 0; otherwise only what changed since
    the previous save (``base``: its serial; ``changes``: section -> key -> entry, or null for a removal), so
    N saves of a growing state log O(N) bytes, not O(N^2). :func:`save` decides: a full record at least once
    the changes logged since the last one outnumber the entries (amortised linear). Every record carries the
    serial, the digest of the signed file and ``entries``, the digest of what a restore rebuilds."""
    record = {k: v for k, v in state.to_dict().items() if k != "handled"}
    extra = {"digest": state_digest(state), "entries": _entries_digest(record)}
    if state.chain == 0 or state.changes_base is None:
        return {**record, **extra}
    for section in SECTIONS:
        del record[section]
    return {**record, **extra, "base": state.changes_base, "changes": _plain(state.changes)}


def _plain(changes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s: {k: (None if v is None else dict(v)) for k, v in c.items()} for s, c in changes.items()}


def _fold(current: Mapping[str, Any] | None, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """``record`` applied to the folded ``current`` (a full record replaces it). A change record that does
    not continue the chain (a save that was never logged) or folds to other entries than it names leaves a
    record marked ``incomplete``: its serial and digest still hold, but :func:`restored` refuses it."""
    if "changes" not in record:
        return dict(record)
    if current is None:
        return {**dict(record), "incomplete": True}
    folded: dict[str, Any] = {s: dict(current.get(s, {})) for s in SECTIONS}
    try:
        for section, changes in dict(record["changes"]).items():
            if section not in SECTIONS:
                raise ValueError(section)
            for key, entry in dict(changes).items():
                if entry is None:
                    folded[section].pop(str(key), None)
                else:
                    folded[section][str(key)] = dict(entry)
        base = int(record["base"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return {**dict(record), "incomplete": True}
    out = {k: v for k, v in record.items() if k not in ("changes", "base")}
    out.update(folded)
    chained = not current.get("incomplete") and base == int(current.get("serial", -1))
    if not chained or _entries_digest(out) != record.get("entries"):
        out["incomplete"] = True
    return out


def logged_state(entries: Iterable[Any]) -> Mapping[str, Any] | None:
    """The latest :data:`STATE_ACTION` record among audit ``entries`` (oldest first), change records folded
    into the full record before them."""
    latest: Mapping[str, Any] | None = None
    for entry in entries:
        if entry.action == STATE_ACTION and entry.outcome == "ok":
            latest = _fold(latest, entry.details)
    return latest


def check_current(state: ResponseState | None, logged: Mapping[str, Any] | None) -> None:
    """Raise IntegrityError when the file's ``state`` (None: no file) is not the latest one logged."""
    if logged is None:
        return
    serial = int(logged.get("serial", 0))
    if state is None:
        raise IntegrityError(f"response state is missing (the audit log records serial {serial})")
    if state.serial < serial:
        raise IntegrityError(f"response state was rolled back (serial {state.serial}, logged {serial})")
    if state.serial == serial and state_digest(state) != logged.get("digest"):
        raise IntegrityError(f"response state serial {serial} differs from the one the audit log records")


def load_current(path: Path, verifier: Any, logged: Mapping[str, Any] | None) -> ResponseState:
    """:func:`load_verified`, refusing a missing or older file than the ``logged`` record
    (:func:`logged_state`)."""
    state = load_verified(path, verifier)
    check_current(state if path.exists() else None, logged)
    return state


class LoggedState:
    """The latest :data:`STATE_ACTION` record of a metadata database's audit log, checked against the log's
    signed tree heads and kept up to date cheaply.

    A row of ``audit_entries`` is believed only when its bytes hash to its stored leaf hash, the rows run
    without a gap up to the latest signed head, and the leaf hashes from the record to that head fold (from
    the stored frontier of the tree just before the record) into the head's root, whose signature is checked
    when a ``verifier`` (the home's log key) is known. Editing a row (hiding or forging a ``respond:state``
    record), its leaf hash or a head's frontier is therefore an :class:`IntegrityError`, never "no state":
    callers fail closed. The first call scans back from the latest head to the newest record; later calls
    read only the entries appended since, extending the verified frontier.

    Not caught here: replacing the whole database together with the state file by an older snapshot (every
    head in it is genuinely signed); the witness head kept outside the home (``log verify``) catches that."""

    def __init__(self, engine: Any, verifier: Any = None) -> None:
        self._engine = engine
        self._verifier = verifier
        self._size: int | None = None  # entries verified so far
        self._frontier: list[bytes] = []  # the Merkle frontier of those entries
        self._latest: Mapping[str, Any] | None = None

    def latest_verified(self, verifier: Any) -> Mapping[str, Any] | None:
        """:meth:`latest` with every head signature checked with ``verifier`` (what ``--restore-state``
        must use: the record it re-signs is then one the log key signed into the tree)."""
        if verifier is None or not hasattr(verifier, "verify"):
            raise IntegrityError("response state: no key to verify the audit log's heads with")
        if self._verifier is not verifier:
            self._verifier, self._size, self._frontier, self._latest = verifier, None, [], None
        return self.latest()

    def _head(self, conn: Any, size: int | None = None) -> Any:
        import sqlalchemy as sa

        from bastion.store.tables import tree_heads

        q = sa.select(tree_heads)
        q = q.order_by(tree_heads.c.size.desc()) if size is None else q.where(tree_heads.c.size == size)
        return conn.execute(q.limit(1)).first()

    def _check_head(self, head: Any, root: bytes) -> None:
        from bastion.store.logrecords import tree_head_data

        if bytes(head.root_hash) != root:
            raise IntegrityError(f"audit log: the entries do not match the signed head of size {head.size}")
        if self._verifier is None:
            return
        try:
            self._verifier.verify(
                tree_head_data(int(head.size), bytes(head.root_hash), head.timestamp), bytes(head.signature)
            )
        except Exception as exc:  # any verifier failure is a bad signature
            raise IntegrityError(f"audit log: tree head of size {head.size} has a bad signature") from exc

    def _rows(self, conn: Any, lo: int, hi: int, *, desc: bool) -> list[Any]:
        import sqlalchemy as sa

        from bastion.store.tables import audit_entries

        t = audit_entries.c
        q = sa.select(t.idx, t.data, t.leaf_hash).where(t.idx >= lo, t.idx < hi)
        q = q.order_by(t.idx.desc() if desc else t.idx).limit(5000)
        return list(conn.execute(q))

    @staticmethod
    def _leaf(row: Any, expected: int) -> bytes:
        from bastion.store import merkle

        if int(row.idx) != expected:
            raise IntegrityError(f"audit log: entry {expected} is missing")
        leaf = merkle.leaf_hash(bytes(row.data))
        if leaf != bytes(row.leaf_hash):
            raise IntegrityError(f"audit log: entry {expected} does not match its leaf hash")
        return leaf

    @staticmethod
    def _record(data: bytes, index: int) -> Mapping[str, Any] | None:
        if STATE_ACTION.encode() not in data:
            return None
        from bastion.store.logrecords import AuditEntry

        entry = AuditEntry.from_leaf(data)
        if entry.action != STATE_ACTION or entry.outcome != "ok":
            return None
        if entry.index != index:
            raise IntegrityError(f"audit log: entry {index} was moved")
        return entry.details

    def latest(self) -> Mapping[str, Any] | None:
        """The newest verified record (None when the log holds none); IntegrityError when the log's rows do
        not match its signed heads."""
        from bastion.store import merkle

        with self._engine.connect() as conn:
            head = self._head(conn)
            size = 0 if head is None else int(head.size)
            if self._size is not None:
                if size < self._size:
                    raise IntegrityError(f"audit log: shrank from {self._size} to {size} entries")
                if size == self._size:
                    return self._latest
            if head is None:
                if self._rows(conn, 0, 2**62, desc=False) and self._head(conn) is None:
                    raise IntegrityError("audit log: entries exist without a signed tree head")
                return None  # empty (or its first entry committed since: read on the next call)
            if self._size is None:
                start, latest = self._scan_back(conn, size)
                frontier = self._frontier_at(conn, start)
                skip = start if latest is not None else -1  # the scan-back record is already in
            else:
                start, latest, frontier, skip = self._size, self._latest, self._frontier, -1
            leaves = 0
            while leaves < size - start:
                rows = self._rows(conn, start + leaves, size, desc=False)
                if not rows:
                    raise IntegrityError(f"audit log: entry {start + leaves} is missing")
                for row in rows:
                    index = start + leaves
                    frontier = merkle.frontier_append(frontier, index, self._leaf(row, index))
                    found = self._record(bytes(row.data), index)
                    if found is not None and index != skip:
                        latest = _fold(latest, found)
                    leaves += 1
            self._check_head(head, merkle.frontier_root(frontier))
        self._size, self._frontier, self._latest = size, frontier, latest
        return latest

    def _scan_back(self, conn: Any, size: int) -> tuple[int, Mapping[str, Any] | None]:
        """The index of the newest full record below ``size`` (0 when none) and the record; the rows above it
        (and the change records among them) are re-checked and folded by the forward pass."""
        hi = size
        while hi > 0:
            rows = self._rows(conn, 0, hi, desc=True)
            if not rows:
                raise IntegrityError(f"audit log: entry {hi - 1} is missing")
            for row in rows:
                index = int(row.idx)
                self._leaf(row, hi - 1)
                hi = index
                if STATE_ACTION.encode() in bytes(row.data):
                    found = self._record(bytes(row.data), index)
                    if found is not None and "changes" not in found:
                        return index, found
        return 0, None

    def _frontier_at(self, conn: Any, size: int) -> list[bytes]:
        """The stored frontier of the tree of ``size`` entries, checked against that head's root (a forged
        frontier then cannot fold into the latest signed root)."""
        from bastion.store import merkle

        if size == 0:
            return []
        head = self._head(conn, size)
        if head is None:
            raise IntegrityError(f"audit log: no tree head of size {size}")
        frontier = merkle.unpack(head.frontier)
        if merkle.frontier_root(frontier) != bytes(head.root_hash):
            raise IntegrityError(f"audit log: the tree head of size {size} does not match its frontier")
        return frontier


def restored(logged: Mapping[str, Any]) -> ResponseState:
    """The state a (folded) :data:`STATE_ACTION` record describes (saved again, it becomes the next serial,
    logged in full)."""
    if logged.get("incomplete") or "changes" in logged:
        raise IntegrityError("the audit log's response-state records do not chain: restore it by hand")
    clean = {k: v for k, v in logged.items() if k in SECTIONS or k in ("serial", "guard_mode")}
    return _parse(json.dumps({**clean, "format": FORMAT, "handled": [], "chain": 0}).encode())


def save(path: Path, state: ResponseState, signer: Signer, *, now: float | None = None) -> ResponseState:
    """Sign and atomically replace the state (serial incremented, expired entries dropped); returns what was
    written, with what changed since the previous serial (for :func:`state_record`)."""
    state = _pruned(state, time.time() if now is None else now)
    try:  # no file or a bad one: a full record
        previous: ResponseState | None = load_verified(path, signer) if path.exists() else None
    except IntegrityError:
        previous = None
    base = state.serial if previous is not None and previous.serial == state.serial else None
    changes = _diff(previous, state) if previous is not None and base is not None else {}
    logged = sum(len(c) for c in changes.values())
    size = sum(len(getattr(state, s)) for s in SECTIONS)
    full = base is None or state.chain + logged > max(16, size)
    state = replace(
        state,
        serial=state.serial + 1,
        handled=state.handled[-5000:],
        chain=0 if full else state.chain + logged,
        changes=changes,
        changes_base=base,
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # one file, one rename: a reader sees the old or the new pair, never a mix
    atomic_write(path, encode_signed(state, signer))
    return state


def _diff(old: ResponseState, new: ResponseState) -> dict[str, dict[str, Any]]:
    """Section -> key -> the new entry (null: removed), for the entries that differ."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        changed = {k: dict(v) for k, v in after.items() if before.get(k) != v}
        changed.update({k: None for k in before if k not in after})
        if changed:
            out[section] = changed
    return out


def _pruned(state: ResponseState, now: float) -> ResponseState:
    """``state`` without the entries whose ``until`` has passed."""
    for section in SECTIONS:
        for key, entry in list(getattr(state, section).items()):
            if entry.get("until") is not None and not _live(entry, now):
                state = state.with_entry(section, key, None)
    return state


def encode_signed(state: ResponseState, signer: Signer) -> bytes:
    """The file's bytes for ``state``: the base64 signature line, then the canonical JSON it covers."""
    data = _data(state)
    return base64.b64encode(signer.sign(data)) + b"\n" + data


__all__ = [
    "SECTIONS",
    "STATE_ACTION",
    "LoggedState",
    "ResponseState",
    "check_current",
    "encode_signed",
    "load_current",
    "load_verified",
    "logged_state",
    "restored",
    "save",
    "state_digest",
    "state_path",
    "state_record",
    "verify_signed",
]

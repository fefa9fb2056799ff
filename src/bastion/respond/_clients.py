"""Client targets of a block or throttle: which are refused outright and which are shared.

A client block cuts off everyone behind the address. So: a network wider than :data:`MIN_PREFIX` is never
blocked; loopback (127.0.0.0/8, ::1 and their IPv4-mapped forms) and the gateway's trusted proxies are
never blocked automatically and refused even when an operator approves (every client shares them); and an
address (or a network) is *shared* — a block waits for approval — when the authenticated traffic (any
outcome) of at least :data:`SHARED_IDENTITIES` identities came from it (from inside it) from
:data:`SHARED_HISTORY_S` before the finding to :data:`SHARED_WINDOW_S` after it. Any outcome counts, so
users refused by an earlier block keep the address shared; IPv4-mapped IPv6 addresses are compared as IPv4.

Who may make an address shared (issue 17 attack17c F2): only events the signed audit log backs count — each
identity is counted on an event that passes the responder's evidence check
(:meth:`bastion.events.verify.EvidenceVerifier.check`), so a row written into ``events.db`` by an insider
never counts — and never the finding's own identity. Two identities, not one: a sprayer who also holds one
valid token (any role) and sends one request with it from the spraying address no longer turns the
automatic block into a pending proposal; he needs the tokens of two identities. The cost, said plainly: an
address that one person uses besides the sprayer (their own infected host, a two-person NAT) is blocked
automatically for :data:`bastion.respond.responder.CLIENT_BLOCK_S`; an operator undoes it.

Only the home's own events count (issue 17 attack17d A1b): a remote gateway's records (``source``
``remote-gateway``) name identities and addresses as its operator writes them, so two made-up identities
"authenticated" from a sprayer's address in one remote record would otherwise make the address shared.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from bastion.events.collect import REMOTE_SOURCE
from bastion.hunt.report import Finding

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# the addresses a proxy on the gateway's own host connects from (every client would share them)
_LOCAL = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
SHARED_WINDOW_S = 3600.0  # authenticated traffic up to this long after a finding marks its address as shared
SHARED_HISTORY_S = 7 * 86400.0  # ... and up to this long before it (any outcome: a blocked user still counts)
MIN_PREFIX = {4: 16, 6: 32}  # a client block never covers a network wider than this
SHARED_IDENTITIES = 2  # identities (other than the finding's, backed by the log) that make an address shared
_MAX_ENTRIES_TRIED = 32  # audit entries tried per identity before its events are taken as not backed


def network_of(target: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``target`` as a network (one address is a /32 or /128; an IPv4-mapped IPv6 address or network as
    IPv4), or None when it is not an address."""
    try:
        network = ipaddress.ip_network(target.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def _local(network: Network, local: Sequence[Network] | None = None) -> bool:
    nets = _LOCAL if local is None else local
    return any(network.overlaps(n) for n in nets if n.version == network.version)  # type: ignore[arg-type]


def is_local(
    network: Network, trusted: Sequence[Network] = (), local: Sequence[Network] | None = None
) -> bool:
    """Loopback (any form; ``local`` narrows it to the host's own addresses) or a trusted proxy: every
    client would share the address."""
    return _local(network, local) or any(
        network.overlaps(n)  # type: ignore[arg-type]
        for n in trusted
        if n.version == network.version
    )


def refusal(
    target: str,
    *,
    trusted: Sequence[Network] = (),
    approved: bool = False,
    local: Sequence[Network] | None = None,
) -> str | None:
    """Why a block of ``target`` is refused outright (None: it is not)."""
    network = network_of(target)
    if network is None:
        return None
    if network.prefixlen < MIN_PREFIX[network.version]:
        return f"a client block never covers a network wider than /{MIN_PREFIX[network.version]}"
    if approved and is_local(network, trusted, local):
        return "the address is the gateway host's own or a trusted proxy's (every client shares it)"
    return None


def shared(
    target: str,
    finding: Finding,
    *,
    verifier: Any,
    trusted: Sequence[Network] = (),
    local: Sequence[Network] | None = None,
) -> bool:
    """The address is loopback, a trusted proxy, or carried the authenticated traffic of
    :data:`SHARED_IDENTITIES` identities (not the finding's) near the finding, each backed by the signed log.

    ``verifier``: the responder's :class:`~bastion.events.verify.EvidenceVerifier` (its ``store`` is looked
    up and its ``check`` decides which events count); None: nothing is looked up."""
    network = network_of(target)
    if network is not None and is_local(network, trusted, local):
        return True
    if verifier is None:
        return False
    store = verifier.store
    window = {"lo": finding.first_seen - SHARED_HISTORY_S, "hi": finding.last_seen + SHARED_WINDOW_S}
    rows = store.query(
        f"SELECT DISTINCT identity, client FROM {store.table} WHERE identity NOT IN ('-', '') "  # noqa: S608 - table name is ours; values are bound
        f"AND audit_index IS NOT NULL AND source <> '{REMOTE_SOURCE}' AND ts >= :lo AND ts <= :hi"
        + (" AND client = :c" if network is None else ""),
        {**window, "c": target},
    )
    clients: dict[str, list[str]] = {}  # identity -> its clients at the address (inside the network)
    for identity, client in rows:
        if str(identity) == finding.identity:
            continue
        if network is not None:
            inner = network_of(str(client))
            if inner is None or inner.version != network.version or not inner.subnet_of(network):  # type: ignore[arg-type]
                continue
        clients.setdefault(str(identity), []).append(str(client))
    if len(clients) < SHARED_IDENTITIES:
        return False
    backed = 0
    for identity, seen in sorted(clients.items()):
        if _backed(store, verifier, identity, seen, window):
            backed += 1
            if backed >= SHARED_IDENTITIES:
                return True
    return False


def _backed(store: Any, verifier: Any, identity: str, clients: list[str], window: dict[str, float]) -> bool:
    """One of ``identity``'s events at ``clients`` in ``window`` passes the evidence check (one event per
    audit entry tried, at most :data:`_MAX_ENTRIES_TRIED` entries: forged rows cannot make this unbounded)."""
    tried = 0
    for client in clients:
        ids = store.query(
            f"SELECT MIN(id) FROM {store.table} WHERE identity = :i AND client = :c "  # noqa: S608 - table name is ours; values are bound
            f"AND audit_index IS NOT NULL AND source <> '{REMOTE_SOURCE}' AND ts >= :lo AND ts <= :hi "
            "GROUP BY audit_index LIMIT :n",
            {"i": identity, "c": client, "n": _MAX_ENTRIES_TRIED - tried, **window},
        )
        for (event_id,) in ids:
            tried += 1
            if verifier.check([int(event_id)], identity=identity, client=client) is None:
                return True
        if tried >= _MAX_ENTRIES_TRIED:
            return False
    return False


__all__ = [
    "MIN_PREFIX",
    "SHARED_HISTORY_S",
    "SHARED_IDENTITIES",
    "SHARED_WINDOW_S",
    "is_local",
    "network_of",
    "refusal",
    "shared",
]

"""Client targets of a block or throttle: which are refused outright and which are shared.

A client block cuts off everyone behind the address. So: a network wider than :data:`MIN_PREFIX` is never
blocked; loopback (127.0.0.0/8, ::1 and their IPv4-mapped forms) and the gateway's trusted proxies are
never blocked automatically and refused even when an operator approves (every client shares them); and an
address (or a network) is *shared* — a block waits for approval — when authenticated traffic of any outcome
came from it (from inside it) from :data:`SHARED_HISTORY_S` before the finding to :data:`SHARED_WINDOW_S`
after it. Any outcome counts, so users refused by an earlier block keep the address shared; IPv4-mapped
IPv6 addresses are compared as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from bastion.hunt.report import Finding

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# the addresses a proxy on the gateway's own host connects from (every client would share them)
_LOCAL = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
SHARED_WINDOW_S = 3600.0  # authenticated traffic up to this long after a finding marks its address as shared
SHARED_HISTORY_S = 7 * 86400.0  # ... and up to this long before it (any outcome: a blocked user still counts)
MIN_PREFIX = {4: 16, 6: 32}  # a client block never covers a network wider than this


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
    store: Any,
    trusted: Sequence[Network] = (),
    local: Sequence[Network] | None = None,
) -> bool:
    """The address is loopback, a trusted proxy, or carried authenticated traffic near the finding (in
    ``store``, an :class:`~bastion.events.store.EventStore`; None: not looked up)."""
    network = network_of(target)
    if network is not None and is_local(network, trusted, local):
        return True
    if store is None:
        return False
    window = {"lo": finding.first_seen - SHARED_HISTORY_S, "hi": finding.last_seen + SHARED_WINDOW_S}
    if network is None:
        rows = store.query(
            f"SELECT 1 FROM {store.table} WHERE client = :c AND identity NOT IN ('-', '') "  # noqa: S608 - table name is ours; values are bound
            "AND ts >= :lo AND ts <= :hi LIMIT 1",
            {"c": target, **window},
        )
        return bool(rows)
    rows = store.query(
        f"SELECT DISTINCT client FROM {store.table} WHERE identity NOT IN ('-', '') "  # noqa: S608 - table name is ours; values are bound
        "AND ts >= :lo AND ts <= :hi",
        window,
    )
    for row in rows:
        inner = network_of(str(row[0]))
        if inner is not None and inner.version == network.version and inner.subnet_of(network):  # type: ignore[arg-type]
            return True
    return False


__all__ = ["MIN_PREFIX", "SHARED_HISTORY_S", "SHARED_WINDOW_S", "is_local", "network_of", "refusal", "shared"]

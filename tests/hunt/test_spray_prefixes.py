"""Issue 17 re-attack F8: spray grouping by network.

IPv4-mapped IPv6 addresses (what a dual-stack listener reports) used to fall into ``::/64`` (every IPv4
client one network), and a spray over 150 /64s of one /48 at 15 tokens each stayed under every per-/64 limit.
"""

from __future__ import annotations

from pathlib import Path

from bastion.events.schema import Event
from bastion.events.store import EventStore
from bastion.hunt.cumulative import cumulative_findings, prefix_of

T0 = 1_796_000_400.0  # an hour boundary


def test_ipv4_mapped_addresses_are_their_ipv4_networks() -> None:
    assert prefix_of("::ffff:8.8.8.8") == "8.8.8.0/24"  # before: "::/64", shared by every IPv4 client
    assert prefix_of("::ffff:203.0.113.5") != prefix_of("::ffff:8.8.8.8")
    assert prefix_of("::ffff:8.8.8.8", wide=True) == "8.8.0.0/16"
    assert prefix_of("2001:db8:abcd:12::1", wide=True) == "2001:db8:abcd::/48"


def test_a_spray_over_many_64s_of_one_48_is_found(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(
                time=T0 + i * 20.0,
                kind="auth-failure",
                client=f"2001:db8:abcd:{i:x}::1",
                outcome="denied",
                count=15,
            )
            for i in range(150)
        ]
    )
    found = cumulative_findings(store)
    assert [(f.client, f.count, f.severity) for f in found] == [("2001:db8:abcd::/48", 2_250, "high")]


def test_one_64_is_not_reported_again_as_its_48(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(
                time=T0 + i * 2.0,
                kind="auth-failure",
                client=f"2001:db8:abcd:1::{i % 9 + 1:x}",
                outcome="denied",
            )
            for i in range(1_200)
        ]
    )
    assert [f.client for f in cumulative_findings(store)] == ["2001:db8:abcd:1::/64"]

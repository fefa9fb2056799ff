"""Issue 17 attack17e: cumulative limits run over the home's own events first.

A1: one remote-gateway record naming the attacker used to join the home's daily request total, so the finding
named it (the responder then asked for approval instead of acting) and named two clients (no block-client).
A2/A3/A5: one refused token from another address or /24 (remote or home) used to widen a block of a slow
sprayer to the /24 or /16.
"""

from __future__ import annotations

from pathlib import Path

from bastion.events.collect import REMOTE_SOURCE
from bastion.events.schema import Event
from bastion.events.store import EventStore
from bastion.hunt.cumulative import Thresholds, cumulative_findings

T0 = 1_796_000_400.0  # an hour boundary
LIMITS = Thresholds(requests_per_day=200)


def _ids(store: EventStore, where: str) -> set[int]:
    return {int(r.id) for r in store.query(f"SELECT id FROM {store.table} WHERE {where}", {})}


def _requests(store: EventStore) -> None:
    store.append(
        [
            Event(time=T0 + i * 300.0, kind="request", identity="mallory", client="198.51.100.7", status=200)
            for i in range(200)
        ]
    )


def test_a_remote_record_does_not_turn_a_home_daily_limit_into_a_remote_finding(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    _requests(store)
    home_only = cumulative_findings(store, limits=LIMITS)
    store.append(
        [
            Event(
                time=T0 + 3600.0,
                kind="request",
                identity="mallory",
                client="192.0.2.44",
                source=REMOTE_SOURCE,
                status=200,
            )
        ]
    )
    found = cumulative_findings(store, limits=LIMITS)
    remote = _ids(store, f"source = '{REMOTE_SOURCE}'")
    home = [f for f in found if not f.key.endswith("|remote")]
    assert [(f.identity, f.client, f.severity, f.count) for f in home] == [
        ("mallory", "198.51.100.7", "high", 200)
    ]
    assert home[0].key == home_only[0].key
    assert not remote & set(home[0].event_ids)
    assert all(f.key.endswith("|remote") or not remote & set(f.event_ids) for f in found)


def test_remote_records_needed_to_cross_make_a_separate_remote_finding(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(time=T0 + i * 300.0, kind="request", identity="mallory", client="198.51.100.7", status=200)
            for i in range(150)
        ]
        + [
            Event(
                time=T0 + 60.0 + i * 300.0,
                kind="request",
                identity="mallory",
                client="192.0.2.44",
                source=REMOTE_SOURCE,
                status=200,
            )
            for i in range(50)
        ]
    )
    found = cumulative_findings(store, limits=LIMITS)
    assert [(f.identity, f.count, f.key.endswith("|remote")) for f in found] == [("mallory", 200, True)]


def _spray(per_hour: int, client: str = "203.0.113.50") -> list[Event]:
    return [
        Event(
            time=T0 + h * 3600.0 + k * 600.0,
            kind="auth-failure",
            client=client,
            outcome="denied",
            count=per_hour // 5,
        )
        for h in range(20)
        for k in range(5)
    ]


def _one(client: str, source: str = "audit") -> Event:
    return Event(time=T0 + 7200.0, kind="auth-failure", client=client, outcome="denied", source=source)


def test_one_refused_token_from_a_neighbour_does_not_widen_a_slow_spray_to_the_24(tmp_path: Path) -> None:
    for n, source in enumerate(("audit", REMOTE_SOURCE)):
        store = EventStore(f"sqlite:///{tmp_path / f'e{n}.db'}")
        store.append([*_spray(50), _one("203.0.113.51", source)])
        found = cumulative_findings(store)
        assert [f.client for f in found if not f.key.endswith("|remote")] == ["203.0.113.50"], source
        assert all(f.client == "203.0.113.50" for f in found), source


def test_one_refused_token_from_another_24_does_not_widen_a_spray_to_the_16(tmp_path: Path) -> None:
    for n, source in enumerate(("audit", REMOTE_SOURCE)):
        store = EventStore(f"sqlite:///{tmp_path / f'e{n}.db'}")
        store.append([*_spray(300), _one("203.0.7.9", source)])
        found = cumulative_findings(store)
        assert found, source
        assert {f.client for f in found} == {"203.0.113.50"}, source


def test_a_spray_really_spread_over_two_24s_still_names_the_16(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(_spray(150) + _spray(150, "203.0.7.9"))
    found = cumulative_findings(store)
    assert "203.0.0.0/16" in {f.client for f in found}

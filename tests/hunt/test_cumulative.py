"""The adaptive campaign (issue 17 M3): an attacker who knows every short-window rule and stays under it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from bastion.events import Event, EventStore
from bastion.hunt import hunt, load_rules
from bastion.hunt.cumulative import Thresholds, cumulative_findings, prefix_of
from bastion.hunt.simulate import WEEK_START, adaptive_campaign, benign_week, campaign, score


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStore, list, int]:
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('adaptive') / 'events.db'}")
    benign = benign_week(seed=1, apps=10)
    attack_events, attacks = adaptive_campaign(seed=1)
    seeded, seeded_attacks = campaign(seed=1)
    store.append(benign + attack_events + seeded)
    return store, attacks + seeded_attacks, len(benign)


def _old_pack(tmp: Path) -> Path:
    """The rule pack as it was: extraction grouped by identity and client, key-then-pull within 10 minutes."""
    root = resources.files("bastion.hunt").joinpath("rules")
    for p in root.iterdir():
        if p.name.endswith(".yml"):
            (tmp / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    burst = tmp / "extraction-burst.yml"
    burst.write_text(
        burst.read_text().replace(
            "    group-by:\n        - identity\n", "    group-by:\n        - identity\n        - client\n"
        )
    )
    key = tmp / "key-then-pull.yml"
    key.write_text(key.read_text().replace("timespan: 30m", "timespan: 10m"))
    return tmp


def test_adaptive_campaign_evades_the_short_window_rules(
    adaptive: tuple[EventStore, list, int], tmp_path: Path
) -> None:
    store, attacks, benign = adaptive
    old = load_rules(_old_pack(tmp_path))
    report = hunt(store=store, rules=old, cumulative=False, anomaly=False)
    result = score(report.findings, attacks[:6], benign_events=benign)
    assert result.found == (), [(f.title, f.identity, f.client) for f in report.findings]


def test_adaptive_and_seeded_campaigns_found_with_few_false_findings(
    adaptive: tuple[EventStore, list, int],
) -> None:
    store, attacks, benign = adaptive
    report = hunt(store=store, anomaly=False)
    result = score(report.findings, attacks, benign_events=benign)
    assert result.missed == (), result
    assert result.false_per_10k <= 1.0, [(f.title, f.identity, f.client) for f in report.findings]
    by_attack = {f.client if f.identity == "-" else f.identity: f for f in report.findings}
    spray = by_attack["198.51.100.0/24"]
    assert spray.rule_id.endswith("0302") and spray.count >= 100 and spray.event_ids
    assert by_attack["3f2a9c0d5e6b4a1f"].rule_id.endswith("0802")


def test_prefix_of() -> None:
    assert prefix_of("198.51.100.7") == "198.51.100.0/24"
    assert prefix_of("2001:db8:0:7::3") == "2001:db8:0:7::/64"
    assert prefix_of("unix-socket") == "unix-socket"


def test_a_spray_from_one_address_names_the_address(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(time=WEEK_START + i * 3.4, kind="auth-failure", client="203.0.113.9", outcome="denied")
            for i in range(1000)
        ]
    )
    found = cumulative_findings(store, limits=Thresholds(refused_per_prefix_hour=1_000_000))
    assert [(f.client, f.title.split(":")[0]) for f in found] == [("203.0.113.9", "refused tokens per day")]
    assert not cumulative_findings(store, since=WEEK_START + 2 * 3600)


def test_two_sprays_from_one_network_hours_apart_are_two_findings(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    spray = [
        Event(time=start + i * 5.0, kind="auth-failure", client=f"198.51.100.{i % 7 + 1}", outcome="denied")
        for start in (WEEK_START, WEEK_START + 5 * 3600)
        for i in range(150)
    ]
    store.append(spray)
    found = cumulative_findings(store)
    assert [(f.client, f.count, f.first_seen) for f in found] == [
        ("198.51.100.0/24", 150, WEEK_START),
        ("198.51.100.0/24", 150, WEEK_START + 5 * 3600),
    ]

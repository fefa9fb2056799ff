"""The rule pack and the anomaly score against a seeded campaign in a generated benign week."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.errors import InvalidInput
from bastion.events import Event, EventStore
from bastion.hunt import hunt, load_rules
from bastion.hunt.simulate import WEEK_START, benign_week, campaign, score
from bastion.vault import init_project


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStore, list, int]:
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('hunt') / 'events.db'}")
    benign = benign_week(seed=0, apps=10)
    attack_events, attacks = campaign(seed=0)
    store.append(benign + attack_events)
    return store, attacks, len(benign)


def test_campaign_found_with_at_most_one_false_finding_per_10k(week: tuple[EventStore, list, int]) -> None:
    store, attacks, benign = week
    report = hunt(store=store)
    result = score(report.findings, attacks, benign_events=benign)
    assert result.missed == () and set(result.found) == {a.name for a in attacks}
    assert result.false_per_10k <= 1.0, [f.title for f in report.findings]
    techniques = {t for f in report.findings for t in f.techniques}
    assert {"AML.T0024.002", "AML.T0012", "AML.T0035"} <= techniques
    assert all(f.event_ids for f in report.findings)


def test_without_the_rules_the_campaign_is_not_named(week: tuple[EventStore, list, int]) -> None:
    store, attacks, benign = week
    result = score(
        hunt(store=store, rules=[], anomaly=False, cumulative=False).findings, attacks, benign_events=benign
    )
    assert result.found == ()


def test_adaptive_extraction_under_the_burst_threshold(tmp_path: Path) -> None:
    """An attacker who knows the 300/min threshold stays under it: the rule misses it (a documented limit);
    the gateway's extraction monitor (monitor-flag events) is the defence that must catch it."""
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    slow = [
        Event(time=WEEK_START + i * 0.21, kind="request", identity="x", client="c", model="m")
        for i in range(3000)
    ]
    store.append(slow)
    assert not hunt(store=store, anomaly=False).findings
    store.append([Event(time=WEEK_START + 700, kind="monitor-flag", identity="x", client="c", model="m")])
    assert [f.rule_id[-3:] for f in hunt(store=store, anomaly=False).findings] == ["201"]


def test_anomaly_names_features(week: tuple[EventStore, list, int]) -> None:
    store, _, _ = week
    anomalies = [f for f in hunt(store=store).findings if f.rule_id == "anomaly.behaviour"]
    assert anomalies and all(f.features and f.score is not None for f in anomalies)


def test_rule_pack_refuses_unknown_atlas_ids(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(
        "title: t\nid: 0b7f3a10-5d1e-4c8a-9f00-00000000ffff\nstatus: test\nlogsource: {product: bastion}\n"
        "detection: {sel: {kind: pull}, condition: sel}\ntags: [atlas.aml.t9999]\n"
    )
    with pytest.raises(InvalidInput, match=r"AML\.T9999"):
        load_rules(tmp_path)
    assert len(load_rules()) == 7  # + the off-hours check, per identity, in bastion.hunt.baseline


def test_hunt_cli_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    vault = init_project(
        home=home, passphrase="pw-for-tests-only", kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.setenv("BASTION_PASSPHRASE", "pw-for-tests-only")
    assert run(["hunt", "--no-anomaly"]) == 0
    # the attacks reach the store through the signed log only: rows written into events.db by hand are not
    # derived from it and are dropped when the collector re-collects (issue 17 attack17d A6)
    now = time.time()
    burst = [
        {"ts": now - 40 + i * 0.1, "identity": "mallory", "client": "198.51.100.23", "status": 200}
        | {"decision": "allow", "model": "m0", "path": "/v1/predict", "latency_ms": 2}
        for i in range(400)
    ]
    spray = {"by_client": [{"client": "198.51.100.7", "decision": "deny:auth", "count": 50}]}
    details = {"requests": burst, "unauthenticated": spray}
    vault.audit.append(actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=details)
    for i in range(8):
        vault.audit.append(actor="dave", action="registry:pull", target=f"m{i}:1", outcome="ok", details={})
    vault.close()
    capsys.readouterr()
    assert run(["hunt", "--format", "json"]) == 1
    assert {f["rule_id"][-3:] for f in json.loads(capsys.readouterr().out)["findings"]} >= {
        "102",
        "302",
        "402",
    }
    assert run(["hunt", "--rules", str(tmp_path / "none")]) == 2
    assert run(["hunt", "--since", "yesterday-ish"]) == 2
    assert run(["events", "export", "--format", "ocsf", "--since", "3650d"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["metadata"]["version"] == "1.1.0"

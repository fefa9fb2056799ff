"""Benign twins of the attack rules: the demo's owner, an admin's maintenance night and a nightly batch job
are never acted on automatically; the attacks they resemble still are (issue 17 follow-up)."""

from __future__ import annotations

from pathlib import Path

from bastion.events import Event, EventStore
from bastion.hunt import hunt
from bastion.hunt.baseline import BULK_PULL_RULE, KEY_THEN_PULL_RULE, OFFHOURS_RULE
from bastion.respond import Responder, load_playbook
from bastion.vault import Vault

DAY = 86_400.0
NIGHT = 1_795_996_800.0 + 21 * DAY  # Monday 2026-12-21 00:00 UTC; history is the three weeks before
MODELS = [f"m{i}" for i in range(6)]


def _store(tmp_path: Path, events: list[Event], name: str = "events") -> EventStore:
    store = EventStore(f"sqlite:///{tmp_path / (name + '.db')}")
    store.append(sorted(events, key=lambda e: e.time))
    return store


def _by_rule(findings: list, rule: str) -> list:
    return [f for f in findings if f.rule_id == rule]


def _admin_history() -> list[Event]:
    """Three weeks of an admin's weekday work (09:00-17:00) with the weekly key rotation on Tuesdays."""
    out = []
    for d in range(21):
        day = NIGHT - 21 * DAY + d * DAY
        if d % 7 >= 5:
            continue
        for h in (9, 11, 14, 16):
            out.append(Event(time=day + h * 3600, kind="pull", identity="admin", model=MODELS[h % 2]))
        if d % 7 == 1:
            out.append(Event(time=day + 10 * 3600, kind="key-op", identity="admin", action="keys:rotate"))
    return out


def _maintenance_night() -> list[Event]:
    t = NIGHT + 2 * 3600  # 02:00: rotate, list, pull three models to check they still decrypt
    return [
        Event(time=t, kind="key-op", identity="admin", action="keys:rotate"),
        Event(time=t + 5, kind="key-op", identity="admin", action="keys:list"),
        *[
            Event(time=t + 60 + i * 30, kind="pull", identity="admin", model=m)
            for i, m in enumerate(MODELS[:3])
        ],
    ]


def test_the_demo_sequence_gives_no_finding_and_no_action(vault: Vault, tmp_path: Path) -> None:
    """The demo at 03:50 UTC on a fresh home: the owner pushes, verifies and pulls, approves and releases the
    model's key for serving, and the gateway pulls it. This rotated the prod key before the fix."""
    t = NIGHT + 3 * 3600 + 50 * 60
    seq = [
        Event(time=t, kind="push", identity="owner", model="digits", action="registry:push"),
        Event(time=t + 2, kind="pull", identity="owner", model="digits", action="registry:pull"),
        Event(time=t + 20, kind="promote", identity="owner", model="digits", action="registry:promote"),
        Event(time=t + 24, kind="key-op", identity="owner", action="serve:approve-release"),
        Event(time=t + 28, kind="key-op", identity="owner", action="serve:key-release"),
        Event(time=t + 28.1, kind="pull", identity="owner", model="digits", action="registry:pull"),
    ]
    findings = list(hunt(store=_store(tmp_path, seq), anomaly=False).findings)
    assert findings == []
    # and even had a rule fired on the owner, the responder (the owner) does not act on its own operator
    kept = vault.list_keys()
    owners = hunt(store=_store(tmp_path, _bad("owner"), "owner"), anomaly=False).findings
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(owners)
    assert results and all(r.status == "skipped" for r in results)
    assert vault.list_keys() == kept


def _bad(identity: str) -> list[Event]:
    t = NIGHT + 3 * 3600
    return [
        Event(time=t, kind="key-op", identity=identity, action="keys:list"),
        *[
            Event(time=t + 60 + i * 40, kind="pull", identity=identity, model=m)
            for i, m in enumerate(MODELS[:3])
        ],
    ]


def test_admin_maintenance_night_is_shown_for_approval_not_acted_on(vault: Vault, tmp_path: Path) -> None:
    _, token = vault.create_token(name="admin", role="admin")
    findings = list(
        hunt(store=_store(tmp_path, _admin_history() + _maintenance_night()), anomaly=False).findings
    )
    key_then_pull = _by_rule(findings, KEY_THEN_PULL_RULE)
    offhours = _by_rule(findings, OFFHOURS_RULE)
    assert [f.severity for f in key_then_pull] == ["low"] and key_then_pull[0].identity == "admin"
    assert [(f.severity, f.count) for f in offhours] == [("low", 3)]
    kept = vault.list_keys()
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings)
    assert results and {r.status for r in results} == {"declined"}, results
    assert {r.mode for r in results} == {"approve"}
    assert vault.authenticate(token).name == "admin" and vault.list_keys() == kept


def test_nightly_batch_job_is_within_its_usual_hours(tmp_path: Path) -> None:
    """A job that pulls six models every night at 02:00: no off-hours finding (those are its hours), and its
    bulk pull is lowered to low (it did the same every night before)."""
    events = [
        Event(time=NIGHT - d * DAY + 2 * 3600 + i * 20, kind="pull", identity="nightly-eval", model=m)
        for d in range(0, 10)
        for i, m in enumerate(MODELS)
    ]
    findings = list(hunt(store=_store(tmp_path, events), anomaly=False, since=NIGHT).findings)
    assert _by_rule(findings, OFFHOURS_RULE) == []
    assert [f.severity for f in _by_rule(findings, BULK_PULL_RULE)] == ["low"]


def test_the_attacks_they_resemble_are_still_acted_on(vault: Vault, tmp_path: Path) -> None:
    """A fresh (stolen) admin credential at night: key-ring listing, then pulls -> high, automatic; a person
    with daytime history pulling at 03:00 -> the off-hours finding (for approval)."""
    vault.create_token(name="ops-bot", role="admin")
    person = [
        Event(time=NIGHT - 21 * DAY + d * DAY + h * 3600, kind="pull", identity="carol", model="m1")
        for d in range(21)
        if d % 7 < 5
        for h in (10, 15)
    ]
    person.append(Event(time=NIGHT + 3 * 3600, kind="pull", identity="carol", model="m1"))
    findings = list(hunt(store=_store(tmp_path, _bad("ops-bot") + person), anomaly=False).findings)
    assert [f.severity for f in _by_rule(findings, KEY_THEN_PULL_RULE)] == ["high"]
    assert [(f.identity, f.severity) for f in _by_rule(findings, OFFHOURS_RULE)] == [("carol", "low")]
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings)
    done = {(r.action, r.target) for r in results if r.status == "done"}
    assert ("disable-identity", "ops-bot") in done and ("rotate-key", "prod") in done
    assert ("block-identity", "carol") not in done

"""Issue 17 attack17c F8: reveal hunting counts revealed values, not reveal calls.

An identity holding ``data:reveal`` (a stolen admin token) re-identified a whole protected file in four
calls: no reveal-spike finding (5 calls in 10 minutes) and no cumulative one (10 calls an hour), although
thousands of values came back. Real parts: the data service (protect, then reveal through a token-opened
vault), the audit log, the collector, the hunt, the evidence check and the default playbook.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.data import service
from bastion.events import EventStore, collect_audit
from bastion.events.verify import EvidenceVerifier
from bastion.hunt import hunt
from bastion.hunt.cumulative import Thresholds
from bastion.respond import Responder, load_playbook
from bastion.vault import Vault, init_project, open_vault

PASSPHRASE = "reveal values passphrase"
REVEAL = "0b7f3a10-5d1e-4c8a-9f00-000000000602"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = init_project(
        home=tmp_path / "home", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    yield v
    v.close()


def _protected(vault: Vault, tmp_path: Path, rows: int = 400) -> str:
    raw = tmp_path / "pii.csv"
    with raw.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "email"])
        for i in range(rows):
            w.writerow([f"Person {i}", f"person{i}@example.com"])
    service.protect(vault, path=raw, out=tmp_path / "pii.prot.csv", use_presidio=False)
    return (tmp_path / "pii.prot.csv").read_text()


def _reveal_findings(store: EventStore) -> list:
    return [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == REVEAL]


def test_four_whole_file_reveals_are_found_by_their_values(vault: Vault, tmp_path: Path) -> None:
    text = _protected(vault, tmp_path)
    _, token = vault.create_token(name="mallory", role="admin")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token, inspectors=[]) as stolen:
        counts = [service.reveal(stolen, scope="default", text=text).revealed for _ in range(4)]
    assert min(counts) >= 400 and sum(counts) >= 1_600  # every e-mail (and maybe name) of the file, 4 times
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    found = _reveal_findings(store)
    # without the defence (the value limits out of reach): the call-counting checks see nothing
    calls_only = Thresholds(reveal_values_per_hour=10**15, reveal_values_per_day=10**15)
    from bastion.hunt.cumulative import cumulative_findings

    assert not [f for f in cumulative_findings(store, limits=calls_only) if f.rule_id == REVEAL]
    assert not [f for f in found if not f.title.startswith("revealed values")]
    # with it: one finding, on mallory, counting the values; its evidence re-derives from the signed log
    [finding] = found
    assert finding.identity == "mallory" and finding.severity == "high"
    assert finding.count == sum(counts)  # the values of all four calls (one hour)
    assert "4 reveal call(s) named" in finding.title
    assert finding.title.startswith(f"revealed values per hour: {finding.count:,} by one identity")
    checker = EvidenceVerifier(log=vault, store=store)
    assert checker.check(finding.event_ids, identity="mallory") is None
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(found, events=store)
    assert [(r.action, r.target, r.status) for r in results] == [("disable-identity", "mallory", "done")]
    store.close()


def test_a_count_inflated_in_events_db_is_refused(vault: Vault, tmp_path: Path) -> None:
    """An insider who writes events.db turns a one-value reveal into a million: the finding appears but
    its evidence no longer matches the signed entry, so nothing acts on it."""
    text = _protected(vault, tmp_path, rows=3)
    token = next(v for v in text.splitlines()[1].split(",") if v.startswith("tok_"))
    _, admin = vault.create_token(name="alice", role="admin")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=admin, inspectors=[]) as alice:
        assert service.reveal(alice, scope="default", tokens=[token]).revealed == 1
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    assert not _reveal_findings(store)  # one value: nothing to find
    db = sqlite3.connect(tmp_path / "events.db")
    db.execute(
        f"UPDATE {store.table} SET details = ? WHERE kind = 'reveal'",
        (json.dumps({"count": 1_000_000, "target": "default"}),),
    )
    db.commit()
    db.close()
    [finding] = _reveal_findings(store)
    assert finding.identity == "alice"
    why = EvidenceVerifier(log=vault, store=store).check(finding.event_ids, identity="alice")
    assert why is not None and "do not match audit entry" in why
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond([finding], events=store)
    assert [r.status for r in results] == ["refused"]
    store.close()


@pytest.mark.parametrize(
    "details", ['{"count": "9999"}', '{"count": -5}', '{"count": true}', "not json", "{}"]
)
def test_a_malformed_count_counts_as_one_value(details: str) -> None:
    from bastion.hunt._reveals import _values

    assert _values(details) == 1

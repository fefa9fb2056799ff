"""Issue 17 known limit 1: ``respond --watch`` runs the anomaly score (on its own schedule, in the background)
and an anomaly finding goes through the same evidence check as a rule finding and, under the default
playbook, waits for approval (a pending proposal carrying the features that drove its score).

Real parts: the gateway's BatchedAuditWriter writing into the signed audit log, the collector, the rule pack,
the Isolation Forest fitted on a week of history, the default playbook and the pending queue. The seeded
client stays under every rule's threshold: without the anomaly score the watch surfaces nothing about it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.events import EventStore
from bastion.events.collect import seal_seeded
from bastion.hunt import Finding, load_rules
from bastion.hunt.anomaly import FEATURES
from bastion.hunt.simulate import DAY, benign_week
from bastion.respond import Responder, load_playbook, parse_playbook, watch
from bastion.respond.pending import PendingQueue
from bastion.respond.state import STATE_DIR
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

SPRAYER = "203.0.113.9"


def _history(vault: Vault, store: EventStore, now: float) -> None:
    """A week of benign traffic that ends where the watch's lookback starts (what the model is fitted on),
    vouched for with the key ring (else the first collection drops rows no audit entry backs)."""
    start = (now // DAY) * DAY - 7 * DAY
    cut = (now // 3600) * 3600 - 3600
    store.append([e for e in benign_week(seed=0, apps=10, days=8, start=start) if e.time < cut])
    seal_seeded(vault, store)


def _live_hour(vault: Vault, *, sprayer: bool) -> None:
    """The last minutes, through the gateway's audit writer: four usual apps and, seeded, one client whose
    15 refused tokens stay under every rule's threshold."""
    writer = BatchedAuditWriter(vault.audit, target="model-0:1", flush_s=0.05)
    now = time.time() - 300
    for a in range(4):
        for i in range(25):
            writer.record(
                RequestRecord(
                    f"app-{a}", "app", f"model-{a}", "1", "POST", "infer", 200, "allow", 3.0, now + i * 6,
                    f"10.1.0.{a + 1}",
                )
            )  # fmt: skip
    for i in range(15 if sprayer else 0):
        writer.record(
            RequestRecord("-", "-", "model-0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + i, SPRAYER)
        )
    writer.close()


def _watch(vault: Vault, store: EventStore, *, anomaly: bool) -> tuple[list[Any], PendingQueue]:
    """Watch (auto mode, default playbook) until an anomaly pass was handed over (or 30 ticks)."""
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=queue)
    stop = threading.Event()
    ticks: list[Any] = []

    def on_tick(tick: Any) -> None:
        ticks.append(tick)
        if tick.error or tick.anomaly_at or (not anomaly and len(ticks) >= 2):
            stop.set()

    watch(
        responder=responder,
        store=store,
        rules=load_rules(),
        interval_s=0.2,
        anomaly=anomaly,
        anomaly_every_s=0.0,
        stop=stop,
        on_tick=on_tick,
        max_ticks=150,
    )
    assert not any(t.error for t in ticks), [t.error for t in ticks]
    return ticks, queue


def _not_the_operator(ticks: list[Any]) -> list[Finding]:
    """The anomaly findings, less the operator's own: the fixture's setup (six pushes by ``owner`` within
    the hour, which the synthetic week never saw) is unusual too, but the responder never acts on its own
    identity (each such result is ``skipped``, checked here)."""
    mine = [f for t in ticks for f in t.anomalies if f.identity == "owner"]
    skipped = {r.finding_key for t in ticks for r in t.results if r.status == "skipped"}
    assert all(f.key in skipped for f in mine)
    return [f for t in ticks for f in t.anomalies if f.identity != "owner"]


def test_watch_proposes_the_anomalous_client_with_its_features(vault: Vault, tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    _history(vault, store, time.time())
    _live_hour(vault, sprayer=True)
    # without the anomaly score: no rule names the seeded client, the watch surfaces nothing about it
    ticks, queue = _watch(vault, store, anomaly=False)
    assert not [f for t in ticks for f in t.found if f.client == SPRAYER]
    assert queue.list() == []
    # with it (the service's default): proposed for approval, with the features that drove its score
    ticks, queue = _watch(vault, store, anomaly=True)
    assert ticks[-1].anomaly_at > 0
    anomalies = _not_the_operator(ticks)
    assert [(f.rule_id, f.client) for f in anomalies] == [("anomaly.behaviour", SPRAYER)]
    results = [r for t in ticks for r in t.results if r.finding_key == anomalies[0].key]
    assert [(r.action, r.target, r.status) for r in results] == [("throttle-client", SPRAYER, "pending")]
    [item] = queue.list()
    assert (item["action"], item["target"]) == ("throttle-client", SPRAYER)
    features = item["finding"]["features"]
    assert features and all(name in FEATURES for name, _, _ in features)
    assert features[0][0] == "error_ratio" and features[0][1] == 1.0  # every request refused
    state = Responder(vault=vault, playbook=load_playbook()).state()
    assert not state.client_throttled(SPRAYER)  # proposed, not done
    store.close()


def test_benign_traffic_gets_no_anomaly_proposal(vault: Vault, tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    _history(vault, store, time.time())
    _live_hour(vault, sprayer=False)
    ticks, queue = _watch(vault, store, anomaly=True)
    assert ticks[-1].anomaly_at > 0  # a pass ran over the live hour
    assert _not_the_operator(ticks) == []
    assert queue.list() == []
    store.close()


def test_anomaly_evidence_is_checked_like_a_rule_finding(vault: Vault, tmp_path: Path) -> None:
    """An anomaly finding naming events that are not in the signed log is refused, not proposed."""
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(benign_week(seed=1, apps=1, days=1, start=time.time() - 600)[:3])  # not from the log
    ids = tuple(int(r.id) for r in store.query(f"SELECT id FROM {store.table}", {}))
    finding = Finding(
        rule_id="anomaly.behaviour",
        title="t",
        techniques=(),
        severity="medium",
        identity="-",
        client=SPRAYER,
        first_seen=time.time(),
        last_seen=time.time(),
        event_ids=ids,
        count=1,
        key="anomaly.behaviour|identity=-|client=203.0.113.9|w=1",
    )
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=queue)
    [result] = responder.respond([finding], events=store)
    assert result.status == "refused" and "not derived from the audit log" in result.detail
    assert queue.list() == []
    store.close()


@pytest.mark.parametrize(
    ("mode_line", "expected"), [("", "approve"), ('mode = "auto"', "auto"), ('mode = "dry-run"', "dry-run")]
)
def test_anomaly_findings_wait_for_approval_unless_a_rule_says_auto(
    vault: Vault, mode_line: str, expected: str
) -> None:
    book = parse_playbook(f'[[rule]]\nmatch = ["*"]\nactions = ["throttle-client"]\n{mode_line}\n')
    finding = Finding(
        rule_id="anomaly.behaviour",
        title="t",
        techniques=(),
        severity="medium",
        identity="-",
        client=SPRAYER,
        first_seen=0.0,
        last_seen=0.0,
        event_ids=(1,),
        count=1,
        key="k",
    )
    [(_, mode)] = Responder(vault=vault, playbook=book, mode="auto").plan([finding])
    assert mode == expected
    rule_finding = Finding(**{**finding.__dict__, "rule_id": "some-rule", "key": "k2"})
    [(_, mode)] = Responder(vault=vault, playbook=book, mode="auto").plan([rule_finding])
    assert mode == ("auto" if expected == "approve" else expected)  # rule findings as before

"""Issue 17 attack17c F9: the dashboard's hunting page shows only findings whose evidence re-derives from the
signed audit log; forged ones (rows an insider wrote into events.db) are listed apart as refused.

Before: the page hunted events.db without the evidence check, so six forged rows showed auditors a high
"Reveal spike" by an innocent identity. Real parts: the dashboard app and its login, the audit log, the
collector, the hunt and the responder's evidence check.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

import pytest

pytest.importorskip("sigma")
from bastion.events import EventStore, collect_audit, default_events_url
from bastion.ui import hunting
from bastion.vault import open_vault

SPRAYER = "203.0.113.9"
REVEAL_SPIKE = "Reveal spike (many reveals by one identity)"


def _genuine_spray_and_forged_reveals(home: Any) -> None:
    now = time.time()
    sample = [
        {"identity": "-", "client": SPRAYER, "decision": "deny:auth", "status": 401, "ts": now + i * 0.1}
        for i in range(30)
    ]
    with open_vault(home=home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        owner.audit.append(
            actor="gateway",
            action="serve:requests",
            target="fraud",
            outcome="denied",
            details={
                "requests": [],
                "unauthenticated": {
                    "count": 30,
                    "by_decision": {"deny:auth": 30},
                    "sample": sample,
                    "by_client": [{"client": SPRAYER, "decision": "deny:auth", "count": 30}],
                },
            },
        )
        with EventStore.for_home(owner.settings.home) as store:
            collect_audit(owner, store)
    db = sqlite3.connect(default_events_url(home).removeprefix("sqlite:///"))
    for i in range(6):  # the insider (writes events.db, holds no key): alice "revealed" 50,000 values 6 times
        db.execute(
            "INSERT INTO bastion_events (ts, kind, identity, client, model, action, outcome, status, source, "
            "severity, attacks, hour, weekday, audit_index, details, count) "
            "VALUES (?, 'reveal', 'alice', '-', 'customers', 'data:reveal', 'ok', 0, 'audit', 'info', '', "
            "0, 0, NULL, '{\"count\": 50000}', 1)",
            (now - 300 + i * 30,),
        )
    db.commit()
    db.close()


def test_forged_findings_are_shown_apart_as_refused(ui: Any, ui_project: Any) -> None:
    _genuine_spray_and_forged_reveals(ui_project.home)
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        # without the defence (no log to check against): the forged reveal spike is a finding like any other
        report, *_ = hunting._report(owner.settings.home, owner.log_head())
        assert any(f.title == REVEAL_SPIKE and f.identity == "alice" for f in report.findings)
        context = hunting.hunt_context(owner)
    shown = [(f["title"], f["subject"]) for f in context["findings"]]
    assert not any(title == REVEAL_SPIKE for title, _ in shown)  # with it: not among the findings
    assert any(SPRAYER in subject for _, subject in shown)  # the genuine spray still is
    [forged] = [f for f in context["refused"] if f["title"] == REVEAL_SPIKE]
    assert "alice" in forged["subject"] and "not derived from the audit log" in forged["refused"]

    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        page = client.get("/hunt")
        assert page.status_code == 200
        findings_table, rest = page.text.split('id="refused-findings"', 1)
        assert REVEAL_SPIKE not in findings_table and SPRAYER in findings_table
        assert REVEAL_SPIKE in rest and "refused by the evidence check" in findings_table

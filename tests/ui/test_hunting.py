"""The hunting page: real findings (bastion.hunt over collected events) and the responder's real actions."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

pytest.importorskip("sigma")
from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.vault import open_vault

SPRAYER = "203.0.113.9"


def test_hunt_page_shows_findings_actions_and_state(ui: Any, ui_project: Any) -> None:
    now = time.time()
    sample = [
        {"identity": "-", "client": SPRAYER, "decision": "deny:auth", "status": 401, "ts": now + i * 0.1}
        for i in range(30)
    ]
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        owner.audit.append(
            actor="gateway",
            action="serve:requests",
            target="fraud",
            outcome="denied",
            details={
                "requests": [],
                "unauthenticated": {"count": 30, "by_decision": {"deny:auth": 30}, "sample": sample},
            },
        )
        with EventStore.for_home(owner.settings.home) as store:
            collect_audit(owner, store)
            report = hunt(store=store)
            spray = [f for f in report.findings if f.client == SPRAYER]
            assert spray, [f.rule_id for f in report.findings]
            results = Responder(vault=owner, playbook=load_playbook(), mode="auto").respond(report.findings)
            assert any(r.target == SPRAYER and r.status == "done" for r in results), results
    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        page = client.get("/hunt")
        assert page.status_code == 200
        text = page.text
        assert spray[0].title in text and SPRAYER in text and "AML.T0012" in text.upper()
        assert "block-client" in text and f"blocked clients: {SPRAYER}" in text
        assert "event(s) in the event store" in text

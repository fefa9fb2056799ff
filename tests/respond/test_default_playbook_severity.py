"""Re-attack F1 follow-up: a threshold finding whose count rests on more rows than it names comes at severity
low (``bastion.hunt.cumulative``); the default playbook then waits for an operator instead of acting."""

from __future__ import annotations

from typing import Any

from bastion.hunt.report import Finding
from bastion.respond import Responder, load_playbook

EXTRACTION = "0b7f3a10-5d1e-4c8a-9f00-000000000102"
SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


class _Vault:
    class settings:
        from pathlib import Path

        home = Path("/nonexistent-bastion-home")

    identity: Any = None


def _modes(rule_id: str, severity: str, client: str = "198.51.100.7") -> dict[str, str]:
    finding = Finding(rule_id, "t", (), severity, "mallory", client, 0.0, 1.0, (), 1, f"k|{severity}")
    planned = Responder(vault=_Vault(), playbook=load_playbook(), mode="auto").plan([finding])
    return {p.action: mode for p, mode in planned}


def test_high_threshold_findings_act_and_unverifiable_ones_wait() -> None:
    assert set(_modes(EXTRACTION, "high").values()) == {"auto"}
    assert set(_modes(EXTRACTION, "low").values()) == {"approve"}
    assert _modes(SPRAY, "high") == {"block-client": "auto"}
    assert _modes(SPRAY, "low") == {"block-client": "approve"}

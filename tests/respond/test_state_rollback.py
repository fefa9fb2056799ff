"""Issue 17 H2: deleting or rolling back HOME/respond/state.json must not lift a block or a quarantine.

The attack (a home writer without the key ring) is run against the checks that read the state with the audit
log's record of the latest state (the gateway's gate, the vault before a pull, ``log verify``) and against the
signature check alone (what they were before).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bastion.errors import AccessDenied, IntegrityError
from bastion.hunt.report import Finding
from bastion.respond import Responder, load_verified, parse_playbook, state_path
from bastion.respond.gate import ResponseGate
from bastion.vault import Vault

BOOK = parse_playbook(
    '[[rule]]\nmatch = ["*"]\nactions = ["block-client", "quarantine-model", "guard-block-mode"]\n'
)


def _finding(key: str) -> Finding:
    return Finding("r1", "t", (), "high", "mallory", "10.1.2.3", 0.0, 1.0, (), 1, key, model="m1")


def _gate(vault: Vault) -> ResponseGate:
    gate = ResponseGate.for_vault(vault, reload_s=0.0)
    assert gate is not None
    return gate


def test_deleting_the_state_does_not_lift_blocks(vault: Vault, tmp_path: Path) -> None:
    responder = Responder(vault=vault, playbook=BOOK, mode="auto")
    assert {r.status for r in responder.respond([_finding("k1")])} == {"done"}
    gate = _gate(vault)
    assert gate.refuses(client="10.1.2.3") and gate.quarantined("m1", 1)
    path = state_path(vault.settings.home)
    path.unlink()  # the attacker: no key needed
    # what the signature check alone concludes: nothing is blocked
    unanchored = ResponseGate(path, vault.signer, reload_s=0.0)
    assert not unanchored.refuses(client="10.1.2.3") and not unanchored.quarantined("m1", 1)
    assert load_verified(path, vault.signer).blocked_clients == {}
    # with the log's record: everything is refused, the pull too, and log verify fails
    assert gate.refuses(client="10.1.2.3") and gate.refuses(client="192.0.2.1")
    with pytest.raises(IntegrityError, match="missing"):
        vault.pull("m1", out=tmp_path / "o1")
    with pytest.raises(IntegrityError, match="response state is missing"):
        vault.log_verify()
    with pytest.raises(IntegrityError):
        responder.respond([_finding("k2")])
    # the owner rebuilds it from the log: the block and the quarantine are back, nothing else is refused
    responder.restore_state()
    assert gate.refuses(client="10.1.2.3") and not gate.refuses(client="192.0.2.1")
    with pytest.raises(AccessDenied, match="quarantined"):
        vault.pull("m1", out=tmp_path / "o2")
    vault.log_verify()


def test_rolling_back_the_state_is_refused(vault: Vault, tmp_path: Path) -> None:
    responder = Responder(vault=vault, playbook=BOOK, mode="auto")
    path = state_path(vault.settings.home)
    responder.respond([Finding("r1", "t", (), "high", "-", "198.51.100.1", 0.0, 1.0, (), 1, "k0")])
    old = tmp_path / "old-state.json"
    shutil.copy(path, old)  # an older signed state: 198.51.100.1 blocked, 10.1.2.3 not
    responder.respond([_finding("k1")])
    gate = _gate(vault)
    assert gate.refuses(client="10.1.2.3")
    shutil.copy(old, path)  # the attacker rolls the file back
    unanchored = ResponseGate(path, vault.signer, reload_s=0.0)
    assert not unanchored.refuses(client="10.1.2.3")  # the signature alone accepts the old file
    assert gate.refuses(client="10.1.2.3") and gate.refuses(client="192.0.2.1")  # refused: rolled back
    with pytest.raises(IntegrityError, match="rolled back"):
        vault.log_verify()
    with pytest.raises(IntegrityError, match="rolled back"):
        vault.pull("m2", out=tmp_path / "o")

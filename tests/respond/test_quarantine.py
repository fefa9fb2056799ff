"""quarantine-model reaches the registry: pulls of the quarantined model are refused (the vault checks the
signed response state), its promotion is taken back, undo restores both, and a state that fails its
signature refuses every pull."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import AccessDenied, IntegrityError, NotFound
from bastion.hunt import Finding
from bastion.respond import Responder, parse_playbook, state_path
from bastion.vault import Vault, open_vault

PASSPHRASE = "correct horse battery staple"
BOOK = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["quarantine-model"]\n')


def _finding(model: str) -> Finding:
    return Finding(
        rule_id="0b7f3a10-5d1e-4c8a-9f00-000000000102",
        title="Extraction burst",
        techniques=("AML.T0024.002",),
        severity="high",
        identity="app",
        client="10.0.0.7",
        first_seen=1.0,
        last_seen=2.0,
        event_ids=(1,),
        count=400,
        key=f"burst|{model}",
        model=model,
    )


def test_a_quarantined_model_is_not_pulled_until_undone(vault: Vault, tmp_path: Path) -> None:
    _, token = vault.create_token(name="shop", role="data-scientist")
    vault.promote("m1", to="staging")
    vault.promote("m1", to="prod")
    newer = tmp_path / "m1-v2"
    newer.mkdir()
    (newer / "weights.bin").write_bytes(b"v2")
    vault.push(newer, name="m1", kind="model")  # m1:2 in dev: the version in prod is the one taken back
    responder = Responder(vault=vault, playbook=BOOK, mode="auto")
    done = responder.respond([_finding("m1")])
    assert [(r.action, r.target, r.status) for r in done] == [("quarantine-model", "m1", "done")]
    assert "m1:1 un-promoted prod -> staging" in done[0].detail
    assert vault.show("m1:1").env == "staging" and vault.show("m1:2").env == "dev"
    with pytest.raises(NotFound):
        vault.show("m1@prod")
    assert [e.details["to"] for e in vault.log_entries() if e.action == "registry:unpromote"] == ["staging"]
    with pytest.raises(AccessDenied, match="quarantined"):
        vault.pull("m1", out=tmp_path / "a")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token) as shop:
        with pytest.raises(AccessDenied, match="quarantined"):
            shop.pull("m1:1", out=tmp_path / "b")
        shop.pull("m2", out=tmp_path / "c")  # other models are untouched
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    refused = [e for e in vault.log_entries() if e.action == "registry:pull" and e.outcome != "ok"]
    assert refused  # the refusals are audit-logged
    responder.undo(action="quarantine-model", target="m1")
    assert vault.show("m1@prod").version == 1  # promoted back
    vault.pull("m1:1", out=tmp_path / "d")
    assert (tmp_path / "d" / "weights.bin").read_bytes() == bytes([1]) * 64


def test_a_tampered_response_state_refuses_pulls(vault: Vault, tmp_path: Path) -> None:
    Responder(vault=vault, playbook=BOOK, mode="auto").respond([_finding("m1")])
    path = state_path(vault.settings.home)
    signature, data = path.read_bytes().split(b"\n", 1)
    path.write_bytes(signature + b"\n" + data.replace(b'"m1"', b'"mX"'))  # lift the quarantine unsigned
    with pytest.raises(IntegrityError):
        vault.pull("m1", out=tmp_path / "a")
    path.unlink()  # deleting it lifts nothing either (issue 17 H2): the audit log records the latest state
    with pytest.raises(IntegrityError, match="missing"):
        vault.pull("m1", out=tmp_path / "b")
    # every pull is refused until the owner restores the state from the log (test_state_rollback.py)
    with pytest.raises(IntegrityError, match="missing"):
        vault.pull("m2", out=tmp_path / "c")

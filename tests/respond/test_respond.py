"""The responder against a real vault: an insider's bulk pull is cut off, every action is audit-logged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bastion.errors import AuthenticationFailed, IntegrityError, InvalidInput
from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt, load_rules
from bastion.respond import Responder, load_playbook, load_verified, parse_playbook, state_path, watch
from bastion.vault import Vault, open_vault

PASSPHRASE = "correct horse battery staple"
MODELS = [f"m{i}" for i in range(6)]


def _insider_pulls(vault: Vault, tmp_path: Path) -> str:
    _, token = vault.create_token(name="dave", role="data-scientist")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token) as dave:
        for i, name in enumerate(MODELS):
            dave.pull(name, out=tmp_path / f"out{i}")
    return token


def _findings(vault: Vault, tmp_path: Path) -> list:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    return list(hunt(store=store, anomaly=False).findings)


def test_auto_disables_the_insider_and_logs_why(vault: Vault, tmp_path: Path) -> None:
    token = _insider_pulls(vault, tmp_path)
    findings = _findings(vault, tmp_path)
    assert any(f.rule_id.endswith("402") and f.identity == "dave" for f in findings)
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings)
    done = [(r.action, r.target, r.status) for r in results if r.action == "disable-identity"]
    assert done == [("disable-identity", "dave", "done")]  # (an off-hours pull rule may also ask approval)
    with pytest.raises(AuthenticationFailed):
        vault.authenticate(token)
    logged = [e for e in vault.log_entries() if e.action == "respond:disable-identity"]
    assert logged and logged[0].details["rule_id"].endswith("402")
    assert logged[0].details["events"] and "AML.T0035" in logged[0].details["techniques"]
    # acted once: the finding key is remembered in the signed state
    assert Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings) == []


def test_dry_run_and_declined_approval_change_nothing(vault: Vault, tmp_path: Path) -> None:
    token = _insider_pulls(vault, tmp_path)
    findings = _findings(vault, tmp_path)
    planned = Responder(vault=vault, playbook=load_playbook(), mode="dry-run").respond(findings)
    assert planned and all(r.status in ("planned", "skipped") for r in planned)
    declined = Responder(vault=vault, playbook=load_playbook(), mode="approve", approve=lambda _: False)
    assert {r.status for r in declined.respond(findings)} <= {"declined", "skipped"}
    assert vault.authenticate(token).name == "dave"
    state = declined.state()  # a declined finding is remembered (not asked again), nothing is blocked
    assert not state.blocked_identities and not state.blocked_clients and state.guard_mode is None


def test_state_actions_are_signed_and_undoable(vault: Vault, tmp_path: Path) -> None:
    from bastion.hunt.report import Finding

    book = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client", "guard-block-mode"]\n')
    finding = Finding("r1", "t", (), "high", "-", "203.0.113.7", 0.0, 1.0, (1,), 1, "r1|client=203.0.113.7")
    responder = Responder(vault=vault, playbook=book, mode="auto")
    assert {r.status for r in responder.respond([finding])} == {"done"}
    state = load_verified(state_path(vault.settings.home), vault.signer)
    assert state.is_blocked(client="203.0.113.7") and state.guard_mode == "block"
    responder.undo(action="block-client", target="203.0.113.7")
    assert not responder.state().is_blocked(client="203.0.113.7")
    path = state_path(vault.settings.home)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"guard_mode":"block"', b'"guard_mode":null'))
    with pytest.raises(IntegrityError):
        responder.state()
    with pytest.raises(InvalidInput):
        responder.undo(action="disable-identity", target="dave")


def test_playbook_refuses_typos() -> None:
    with pytest.raises(InvalidInput, match="unknown key"):
        parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\nmdoe = "auto"\n')
    with pytest.raises(InvalidInput, match="actions"):
        parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["nuke"]\n')
    with pytest.raises(InvalidInput, match="at least one"):
        parse_playbook("")


@pytest.mark.slow
def test_watch_contains_a_bulk_pull_within_seconds(vault: Vault, tmp_path: Path) -> None:
    """respond --watch against a real vault: time from the first detectable pull to the insider refused."""
    _, token = vault.create_token(name="dave", role="data-scientist")
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    stop = threading.Event()
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE) as owner:
        responder = Responder(vault=owner, playbook=load_playbook(), mode="auto")
        loop = threading.Thread(
            target=watch, kwargs={"responder": responder, "store": store, "rules": load_rules(), "stop": stop}
        )
        loop.start()
        try:
            detectable = refused = None
            for i in range(100):  # each pull authenticates afresh, as each `bastion registry pull` does
                try:
                    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token) as dave:
                        dave.pull(MODELS[i % len(MODELS)], out=tmp_path / f"o{i}")
                except AuthenticationFailed:
                    refused = time.time()
                    break
                if i == 4:
                    detectable = time.time()  # the 5th distinct model: the rule can fire now
                time.sleep(0.2)
        finally:
            stop.set()
            loop.join()
    assert detectable is not None and refused is not None
    assert refused - detectable < 10.0


def test_respond_cli_modes_and_exit_codes(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    token = _insider_pulls(vault, tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(vault.settings.home))
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    book = tmp_path / "book.toml"
    book.write_text(
        '[[rule]]\nmatch = ["0b7f3a10-5d1e-4c8a-9f00-000000000402"]\nactions = ["disable-identity"]\n'
    )
    assert run(["respond", "--playbook", str(book)]) == 1  # dry-run (default): planned, exit 1
    assert "planned  disable-identity  dave" in capsys.readouterr().out
    assert vault.authenticate(token).name == "dave"
    assert run(["respond", "--playbook", str(book), "--auto", "--format", "json"]) == 0
    assert '"status": "done"' in capsys.readouterr().out
    with pytest.raises(AuthenticationFailed):
        vault.authenticate(token)
    assert run(["respond", "--playbook", str(book), "--auto", "--approve"]) == 2
    assert run(["respond", "--undo", "disable-identity:dave"]) == 2
    book.write_text("[[rule]]\nmatch = []\n")
    assert run(["respond", "--playbook", str(book)]) == 2

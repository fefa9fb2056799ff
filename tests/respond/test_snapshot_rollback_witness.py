"""Issue 17 known limit 4: the whole home rolled back to an older snapshot (``bastion.db``,
``audit-head.json`` and ``respond/state.json`` together: a consistent, genuinely signed past) lifts every
block made since; with a witness of the audit log configured (``[[log.witness]]``, outside the home) the
responder, the gateway's gate and the team server refuse it (:mod:`bastion.respond.rollback`).

The attacker holds the home (and, for the fork, the passphrase too: it re-signs a new history after the
rollback, never telling the witness); it cannot rewrite the witness file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError
from bastion.hunt.report import Finding
from bastion.respond import Responder, parse_playbook, state_path
from bastion.respond.gate import ResponseGate
from bastion.respond.rollback import RollbackCheck
from bastion.store.auditlog import AuditLog
from bastion.store.db import open_engine
from bastion.store.witness import FileWitness
from bastion.vault import init_project, open_vault

PASS = "snapshot rollback passphrase"
BOOK = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\n')
CLIENT = "203.0.113.66"


def _home(tmp_path: Path, *, witness: bool) -> tuple[Path, Path]:
    home, spool = tmp_path / "home", tmp_path / "elsewhere" / "heads.jsonl"
    init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast(), inspectors=[]).close()
    if witness:
        with (home / "bastion.toml").open("a", encoding="utf-8") as f:
            f.write(f'\n[[log.witness]]\nkind = "file"\npath = "{spool}"\n')
    return home, spool


def _respond(home: Path, key: str) -> None:
    """``block``: block the client; anything else: a finding with no target (a state that blocks no one)."""
    client = CLIENT if key == "block" else "-"
    finding = Finding("r1", "t", (), "high", "-", client, 0.0, 1.0, (), 1, key)
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        results = Responder(vault=v, playbook=BOOK, mode="auto").respond([finding])
        assert [r.status for r in results] == (["done"] if key == "block" else ["skipped"])


def _attack(home: Path, tmp_path: Path) -> None:
    """Snapshot the home with nothing blocked, block the client, then put the whole snapshot back."""
    _respond(home, "warm-up")  # a state (serial 1) that blocks no one
    snapshot = tmp_path / "snapshot"
    shutil.copytree(home, snapshot)
    _respond(home, "block")
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and gate.refuses(client=CLIENT)
    shutil.rmtree(home)
    shutil.copytree(snapshot, home)


def _touch_state(home: Path) -> None:
    """Make the gate re-read the state (same bytes, new stamp): what any new response does."""
    path = state_path(home)
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)


def test_without_a_witness_the_snapshot_lifts_the_block(tmp_path: Path) -> None:
    home, _ = _home(tmp_path, witness=False)
    _attack(home, tmp_path)
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and not gate.refuses(client=CLIENT)  # the attack succeeds
        assert Responder(vault=v, playbook=BOOK).state().blocked_clients == {}
        v.log_verify()  # a consistent past: nothing inside the home tells


def test_a_witness_refuses_the_rolled_back_home(tmp_path: Path) -> None:
    from bastion.server.state import ServerState

    home, spool = _home(tmp_path, witness=True)
    _attack(home, tmp_path)
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        # what the checks inside the home conclude (no witness asked): nothing is blocked
        blind = ResponseGate.for_vault(v, reload_s=0.0, witnessed=None)
        assert blind is not None and not blind.refuses(client=CLIENT)
        # with the log's witness: the gateway refuses every request, the responder acts on nothing
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and gate.state() is None and gate.refuses(client="192.0.2.1")
        with pytest.raises(IntegrityError, match="rolled back"):
            Responder(vault=v, playbook=BOOK, mode="auto").state()
        with pytest.raises(IntegrityError, match=r"witness file:.* saw"):
            RollbackCheck(v.audit).check()
    server = ServerState.open(home=home, passphrase=PASS)  # the team server refuses too
    try:
        assert server.response.state() is None
    finally:
        server.close()
    # the adaptive attacker also re-signs a longer history after the rollback, so the log is no longer
    # behind the witness (it never tells the witness): the head of the witnessed size differs
    engine = open_engine(f"sqlite:///{home / 'bastion.db'}")
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        held = max(h.size for h in FileWitness(spool).heads())
        log = AuditLog(engine, v.audit.signer, witness_path=home / "audit-head.json")  # no witnesses
        while log.tree_head().size < held + 2:
            log.append(actor="owner", action="forged", target="-", outcome="ok")
        with pytest.raises(IntegrityError, match="differ from what witness"):
            RollbackCheck(v.audit).check()
    engine.dispose()


def test_a_witness_lets_the_honest_home_through(tmp_path: Path) -> None:
    home, spool = _home(tmp_path, witness=True)
    _respond(home, "block")
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        check = RollbackCheck(v.audit)
        assert check.enabled
        check.check()
        v.audit.append(actor="owner", action="test", target="-", outcome="ok")
        check.check()  # only the bytes appended since are read
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and gate.refuses(client=CLIENT) and not gate.refuses(client="192.0.2.1")
        # a witness that cannot be read: refused, and asked again at the next reload (not only when the
        # state file changes), so the gateway serves again once the witness is back
        kept = spool.read_bytes()
        spool.unlink()
        spool.mkdir()
        _touch_state(home)
        assert gate.refuses(client="192.0.2.1")
        spool.rmdir()
        spool.write_bytes(kept)
        assert not gate.refuses(client="192.0.2.1")
    # a witness file rewritten shorter (to hide heads) is refused by a check that has read it before
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        check = RollbackCheck(v.audit)
        check.check()
        spool.write_bytes(spool.read_bytes().splitlines(keepends=True)[0])
        with pytest.raises(IntegrityError, match="shrank"):
            check.check()

"""attack17d A5: ``[[log.witness]]`` lives in the home's own ``bastion.toml``, so the writer who restores an
older snapshot also deletes the table and the gate, the responder and the team server believe the
rolled-back state. A witness named from outside the home (``$BASTION_WITNESS`` / ``--witness``) is checked
whatever the home's file says; ``--require-witness`` refuses to start without any."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.respond.test_snapshot_rollback_witness import BOOK, CLIENT, PASS, _attack, _home

from bastion.cli import run
from bastion.errors import ConfigError, IntegrityError
from bastion.respond import Responder
from bastion.respond.gate import ResponseGate
from bastion.respond.rollback import REQUIRE_ENV, WITNESS_ENV
from bastion.vault import open_vault


def _drop_witness_table(home: Path) -> None:
    toml = home / "bastion.toml"
    toml.write_text(toml.read_text(encoding="utf-8").split("[[log.witness]]")[0], encoding="utf-8")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # registered with monkeypatch so a CLI call that sets them in-process is undone after the test
    monkeypatch.setenv(WITNESS_ENV, "")
    monkeypatch.setenv(REQUIRE_ENV, "")


def test_the_table_deleted_lifts_the_block_without_an_outside_witness(tmp_path: Path) -> None:
    home, _ = _home(tmp_path, witness=True)
    _attack(home, tmp_path)
    _drop_witness_table(home)
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and not gate.refuses(client=CLIENT)  # the attack (A5) succeeds


def test_an_outside_witness_refuses_the_rolled_back_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.server.state import ServerState

    home, spool = _home(tmp_path, witness=True)
    _attack(home, tmp_path)
    _drop_witness_table(home)
    monkeypatch.setenv(WITNESS_ENV, str(spool))
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v:
        gate = ResponseGate.for_vault(v, reload_s=0.0)
        assert gate is not None and gate.state() is None and gate.refuses(client="192.0.2.1")
        with pytest.raises(IntegrityError, match="rolled back"):
            Responder(vault=v, playbook=BOOK, mode="auto").state()
    server = ServerState.open(home=home, passphrase=PASS)
    try:
        assert server.response.state() is None
    finally:
        server.close()


def test_the_witness_flag_reaches_the_responder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, spool = _home(tmp_path, witness=True)
    _attack(home, tmp_path)
    _drop_witness_table(home)
    monkeypatch.setenv("BASTION_PASSPHRASE", PASS)
    argv = ["respond", "--auto", "--home", str(home)]
    assert run(argv) == 0  # the home's own checks: nothing wrong
    capsys.readouterr()
    assert run([*argv, "--witness", str(spool)]) == 1  # an integrity finding: behind the witness
    assert "rolled back" in capsys.readouterr().err


def test_require_witness_refuses_to_start_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, spool = _home(tmp_path, witness=False)
    monkeypatch.setenv("BASTION_PASSPHRASE", PASS)
    assert run(["respond", "--auto", "--require-witness", "--home", str(home)]) == 2
    assert "witness is required" in capsys.readouterr().err
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with open_vault(home=home, passphrase=PASS, inspectors=[]) as v, pytest.raises(ConfigError):
        ResponseGate.for_vault(v, reload_s=0.0)
    # a witness inside the home witnesses nothing: refused as a usage error
    assert run(["respond", "--auto", "--witness", str(home / "heads.jsonl"), "--home", str(home)]) == 2
    # named from outside: starts (nothing to do on a fresh home)
    assert run(["respond", "--auto", "--witness", str(spool), "--home", str(home)]) in (0, 1)

"""``bastion log verify|head|prove|consistency|show`` and a tampered log exiting 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import sqlalchemy as sa

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project


def test_log_commands_and_tampering(tmp_path: Path, monkeypatch, capsys) -> None:
    h = tmp_path / "home"
    v = init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    for i in range(4):
        v.audit.append(actor="owner", action="test", target=str(i), outcome="ok")
    v.close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    assert run(["log", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit log consistent: 5 entries" in out and "UNWITNESSED" in out
    assert run(["log", "head", "--format", "json"]) == 0
    head_text = capsys.readouterr().out
    assert json.loads(head_text)["size"] == 5
    (tmp_path / "head.json").write_text(head_text)
    assert run(["log", "prove", "3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == 3
    assert run(["log", "prove", "99"]) == 2
    assert run(["log", "consistency", "2", "5"]) == 0
    assert "consistent: 2 -> 5" in capsys.readouterr().out
    assert run(["log", "show", "--format", "json"]) == 0
    assert [e["action"] for e in json.loads(capsys.readouterr().out)][:2] == ["project:init", "test"]
    assert run(["log", "verify", "--trusted-head", str(tmp_path / "head.json")]) == 0
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx = 2"))
    engine.dispose()
    capsys.readouterr()
    assert run(["log", "verify"]) == 1
    assert "audit log" in capsys.readouterr().err

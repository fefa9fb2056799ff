"""``bastion keys rotate|retire|list``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project


def test_rotate_retire_list(tmp_path: Path, monkeypatch, capsys) -> None:
    h = tmp_path / "home"
    init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    ).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_bytes(b"weights")
    assert (
        run(["registry", "push", str(tmp_path / "m"), "--name", "m", "--env", "prod", "--allow-unsafe"]) == 0
    )
    assert run(["keys", "retire", "--env", "prod", "--version", "1"]) == 2  # still in use
    capsys.readouterr()
    assert run(["keys", "rotate", "--env", "prod", "--format", "json"]) == 0
    captured = capsys.readouterr()
    (rotation,) = json.loads(captured.out)
    assert {k: rotation[k] for k in ("env", "kek_version", "rewrapped")} == {
        "env": "prod",
        "kek_version": 2,
        "rewrapped": 1,
    }, captured
    # every registered holder is asked, and none holds anything in this home yet
    assert set(rotation["other"]) == {
        "data-protection scope key(s)",
        "watermark key(s)",
        "gateway attester key",
    }
    assert set(rotation["other"].values()) == {0}
    assert run(["keys", "retire", "--env", "prod", "--version", "1"]) == 0
    assert "retired KEK prod/v1" in capsys.readouterr().out
    assert run(["keys", "list", "--format", "json"]) == 0
    keys = {(k["env"], k["version"]): k for k in json.loads(capsys.readouterr().out)}
    assert keys[("prod", 1)]["retired"] and keys[("prod", 2)]["current"]
    assert run(["registry", "verify", "m:1"]) == 0
    assert run(["keys", "rotate"]) == 0  # every environment
    assert "dev: KEK v2" in capsys.readouterr().out

"""``bastion init`` / ``bastion status``, in-process and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.cli import run


@pytest.mark.slow
def test_init_status_and_subprocess(tmp_path: Path, monkeypatch, capsys) -> None:
    h = tmp_path / "home"
    monkeypatch.setenv("BASTION_HOME", str(h))
    assert run(["init"]) == 0
    assert (h / "bastion.toml").is_file() and (h / "keyring.json").is_file()
    assert run(["init"]) == 2  # never overwrites a home
    assert "already exists" in capsys.readouterr().err
    env = dict(os.environ, BASTION_HOME=str(h))
    proc = subprocess.run(
        [sys.executable, "-c", "from bastion.cli import main; main()", "status", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"role": "admin"' in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-c", "from bastion.cli import main; main()", "log", "verify"],
        env=dict(env, BASTION_PASSPHRASE="not it"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") <= 1

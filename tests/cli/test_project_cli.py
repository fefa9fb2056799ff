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


def test_init_short_passphrase_warning_and_private_files_under_umask_000(tmp_path: Path) -> None:
    """Issue 12 item 4 through the real entry point: warning on stderr, 0700 home, 0600 files."""
    import stat

    h = tmp_path / "home"
    h.mkdir(mode=0o755)
    env = dict(os.environ, BASTION_HOME=str(h), BASTION_PASSPHRASE="short")
    proc = subprocess.run(
        [sys.executable, "-c", "from bastion.cli import main; main()", "init"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(0),
    )
    assert proc.returncode == 0, proc.stderr
    assert "shorter than 12 characters" in proc.stderr
    assert stat.S_IMODE(h.stat().st_mode) == 0o700
    for p in h.rglob("*"):
        assert stat.S_IMODE(p.lstat().st_mode) == (0o700 if p.is_dir() else 0o600), p


def test_next_command_says_it_removed_a_killed_commands_plaintext(tmp_path: Path) -> None:
    """Issue 12 item 3: a stale claim (its process died) is cleaned by the next command, which says so."""
    import json

    h = tmp_path / "home"
    env = dict(os.environ, BASTION_HOME=str(h))
    cli = [sys.executable, "-c", "from bastion.cli import main; main()"]
    assert subprocess.run([*cli, "init"], env=env, capture_output=True, check=False).returncode == 0
    stage = tmp_path / "out" / ".bastion-pull-0123456789abcdef"
    stage.mkdir(parents=True)
    (stage / "weights.bin").write_bytes(b"plaintext")
    (h / "tmp" / "claims").mkdir(parents=True, exist_ok=True)
    (h / "tmp" / "claims" / "dead.json").write_text(
        json.dumps({"path": str(stage), "kind": "pull", "pid": 1})
    )
    proc = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "removed a leftover temporary" in proc.stderr and str(stage) in proc.stderr
    assert not stage.exists() and (tmp_path / "out").exists()

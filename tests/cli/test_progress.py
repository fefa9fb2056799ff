"""The shared progress helper: bars on a terminal, nothing in JSON or pipes, "done" for finished steps."""

from __future__ import annotations

import io

import pytest

from bastion.cli._progress import interactive, progress, step


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_interactive_only_on_a_terminal_with_text_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASTION_NO_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not interactive()  # a pipe
    monkeypatch.setattr("sys.stderr", _Tty())
    assert interactive()
    assert not interactive(json_output=True)
    monkeypatch.setenv("BASTION_NO_PROGRESS", "1")
    assert not interactive()


def test_disabled_progress_prints_nothing(capsys) -> None:
    with progress(enabled=False) as update:
        update("setup", 0.5, "half")
    with step("training", enabled=False):
        pass
    assert capsys.readouterr() == ("", "")


def test_no_update_no_output(capsys) -> None:
    """A command that fails before any work prints its error alone (no empty bar, no blank line)."""
    with pytest.raises(RuntimeError), progress(enabled=True):
        raise RuntimeError("boom")
    assert capsys.readouterr().err == ""


def test_earlier_steps_read_done(capsys) -> None:
    with progress(enabled=True) as update:
        update("setup", 0.0, "training the demo model")
        update("evasion", 0.5, "pgd")
        update("evasion", 1.0, "grade B")
    err = capsys.readouterr().err
    setup = next(line for line in err.splitlines() if line.startswith("setup"))
    assert "done" in setup
    assert "grade B" in err  # a finished step keeps its own final note
    with step("training on digits", enabled=True):
        pass
    assert "training on digits — done" in capsys.readouterr().err


def test_push_and_pull_show_a_step_on_a_terminal_only(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 11: long commands say what they are doing on a terminal, and nothing in a pipe."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "home"
    init_project(home=home, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    np.save(tmp_path / "w.npy", np.arange(4))
    exe = str(Path(sys.executable).with_name("bastion"))
    env = {**os.environ, "BASTION_HOME": str(home)}
    env.pop("BASTION_NO_PROGRESS", None)
    master, slave = os.openpty()
    try:
        proc = subprocess.run(
            [exe, "registry", "push", str(tmp_path / "w.npy"), "--name", "w"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, shown
    assert "scanning, signing and encrypting w.npy — done" in shown
    piped = subprocess.run(
        [exe, "registry", "pull", "w:1", "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stderr == ""

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

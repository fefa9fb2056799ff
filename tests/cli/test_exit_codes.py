"""Every exit code the CLI can return is documented in the README, and each error class maps to one."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import bastion.errors as errors
from bastion.cli import EXIT_ERROR, EXIT_FINDING, EXIT_OK, run

README = Path(__file__).resolve().parents[2] / "README.md"


def _error_classes() -> list[type[errors.BastionError]]:
    return [
        obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, errors.BastionError)
    ]


def test_every_error_maps_to_a_documented_exit_code() -> None:
    text = README.read_text(encoding="utf-8")
    documented = {int(m) for m in re.findall(r"^\|\s*`?(\d)`?\s*\|", text, flags=re.MULTILINE)}
    assert {EXIT_OK, EXIT_FINDING, EXIT_ERROR} <= documented
    for cls in _error_classes():
        assert cls.exit_code in documented, cls
        expected = EXIT_FINDING if issubclass(cls, errors.Finding) else EXIT_ERROR
        assert cls.exit_code == expected, cls


def test_version_and_help(capsys) -> None:
    assert run(["--version"]) == 0
    assert "bastion" in capsys.readouterr().out
    assert run(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys) -> None:
    assert run(["no-such-command"]) == EXIT_ERROR
    assert "Traceback" not in capsys.readouterr().err


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from bastion.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("bastion ")

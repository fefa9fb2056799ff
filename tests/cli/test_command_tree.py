"""The CLI's click tree is the same whatever the environment and working directory: tests/conftest.py builds
it once per session for the in-process ``run`` calls, which is only sound while this holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

import bastion.cli as cli


def _signature(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [(path, cmd.help, getattr(cmd, "hidden", None))]
    for p in cmd.params:
        kind = p.type
        out.append(
            (
                path,
                p.name,
                repr(p.default),
                tuple(p.opts),
                tuple(p.secondary_opts),
                p.envvar,
                getattr(p, "hidden", None),
                type(kind).__name__,
                getattr(kind, "name", None),
                tuple(getattr(kind, "choices", ()) or ()),
                p.required,
                getattr(p, "help", None),
            )
        )
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            out += _signature(sub, (*path, name))
    return out


def test_the_tree_does_not_depend_on_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("BASTION_URL", "BASTION_TOKEN", "BASTION_CA", "BASTION_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "a-home"))
    first = _signature(typer_tree())
    monkeypatch.chdir("/")
    monkeypatch.setenv("BASTION_URL", "https://registry.example")
    monkeypatch.setenv("BASTION_TOKEN", "bst_0123456789abcdef.x")
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "b-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    second = _signature(typer_tree())
    assert len(first) > 100 and first == second
    assert _signature(cli.build_command()) == first  # what the in-process calls parse with


def typer_tree() -> click.Command:
    """A fresh build (never the session's cached tree)."""
    import typer

    command = typer.main.get_command(cli.build_app())
    cli._escape_markup(command)
    return command

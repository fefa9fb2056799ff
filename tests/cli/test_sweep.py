"""Every command, given missing or wrong arguments, answers with one clear error: never a traceback and never
"internal error" (issue 14, must-hold). The command list is read from the CLI itself, so a new command is
swept without editing this file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from bastion.cli import build_command, run

WRONG = "/nonexistent/bastion-sweep"


def _leaves(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


LEAVES = list(_leaves(build_command()))
IDS = [" ".join(p) for p, _ in LEAVES]


def _wrong_value(param: click.Parameter) -> str:
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return "-1"
    return WRONG


def _wrong_args(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    args = list(path)
    for param in cmd.params:
        if not param.required:
            continue
        if isinstance(param, click.Option):
            args += [param.opts[0], _wrong_value(param)]
        else:
            args.append(_wrong_value(param))
    return args


@pytest.fixture(autouse=True)
def _fresh_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer: empty directory, no project home, no passphrase, no token, nothing on stdin."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "no-home"))
    for var in ("BASTION_PASSPHRASE", "BASTION_TOKEN", "BASTION_DEBUG", "BASTION_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed with the test process


def _clean(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text, text[-2000:]
    assert "internal error" not in text, text[-2000:]
    return text


def test_the_sweep_covers_the_cli() -> None:
    assert len(LEAVES) >= 40
    assert ("audit",) in [p for p, _ in LEAVES] and ("registry", "push") in [p for p, _ in LEAVES]


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_unknown_option_is_a_usage_error(path: tuple[str, ...], cmd: click.Command, capsys) -> None:
    assert run([*path, "--no-such-option-anywhere"]) == 2
    assert "No such option" in _clean(capsys)


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_missing_arguments(path: tuple[str, ...], cmd: click.Command, capsys) -> None:
    if not any(p.required for p in cmd.params):
        pytest.skip("every argument is optional: running it bare is a real run, not a mistake")
    assert run(list(path)) == 2
    text = _clean(capsys)
    assert "Missing" in text or "Usage" in text


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_wrong_arguments(path: tuple[str, ...], cmd: click.Command, capsys) -> None:
    if not any(p.required for p in cmd.params):
        pytest.skip("every argument is optional")
    code = run(_wrong_args(path, cmd))
    text = _clean(capsys)
    assert code in (0, 1, 2), text[-2000:]
    if code == 2:  # a refusal says what is wrong (some commands legitimately accept any text)
        assert "error" in text.lower(), text[-2000:]
        assert not text.startswith("\n"), "an error preceded by a blank line"  # issue 14 item 12

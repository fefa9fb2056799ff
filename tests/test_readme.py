"""The README's install and test commands are CI's; its quick start runs as written on a fresh project home
(inside the README walk, tests/test_readme_walk.py)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _quickstart_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert match, "README quick start has no bash block"
    return match.group(1)


def test_readme_starts_with_install_and_test_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("## Install") < text.index("## Test") < text.index("## Quick start")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = re.search(r"## Test\n\n```bash\n(.*?)\n```", text, flags=re.DOTALL)
    install_cmd = re.search(r"## Install\n\n```bash\n(.*?)\n```", text, flags=re.DOTALL)
    assert test_cmd and install_cmd
    assert test_cmd.group(1).strip() in ci.splitlines()
    assert install_cmd.group(1).strip() in ci.splitlines()


def test_the_walk_runs_every_quick_start_line() -> None:
    """The quick start runs as written, in order, on a fresh home inside tests/test_readme_walk.py (which also
    checks its result, ``./restored``): every line of the block must be one the walk runs, none it skips."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("walk", README.parent / "tests" / "test_readme_walk.py")
    assert spec is not None and spec.loader is not None
    walk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(walk)
    lines = [line for line in _quickstart_block().splitlines() if line.strip() and not line.startswith("#")]
    walked = {command for _, command in walk._commands()}
    assert len(lines) >= 8
    for line in lines:
        assert line.strip() in walked, line
        command, _ = walk._strip_comment(line.strip())
        assert command.startswith(("bastion ", "export ")), command
        assert not any(command.startswith(p) for p in (*walk.SKIP, *walk.DEDICATED)), command
        assert command.startswith("export ") or not walk.SYNOPSIS.search(command), command

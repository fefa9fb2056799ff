"""The README's quick start runs as written on a fresh project home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_quickstart_runs(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("BASTION_HOME", None)
    env.pop("BASTION_PASSPHRASE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -euo pipefail\n" + _quickstart_block()
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "restored").is_dir()
    assert "Traceback" not in proc.stderr

"""The README's gateway client examples (curl and httpx) run against a real gateway (issue 14.15)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.serve.tls import self_signed_certificate

from .conftest import Digits, Project, ServerThread, make_gateway

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Calling the gateway.**") :]
    bash = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    python = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert bash and python
    return bash.group(1), python.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_gateway_examples_run(project: Project, digits: Digits, tmp_path: Path) -> None:
    from bastion.serve import create_app

    cert, key = self_signed_certificate(project.home / "serve")
    assert cert.name == "gateway-cert.pem"  # the path the README names
    bash, python = _examples()
    env = {**os.environ, "BASTION_HOME": str(project.home), "TOKEN": project.tokens["alice"]}
    with ServerThread(create_app(make_gateway(project, digits)), ssl=(str(cert), str(key))) as server:
        url = f"https://127.0.0.1:{server.port}"
        script = "\n".join(line for line in bash.splitlines() if not line.startswith("export TOKEN="))
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace("https://127.0.0.1:8080", url)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert '"top_k_probabilities"' in proc.stdout
        proc = subprocess.run(
            [sys.executable, "-c", python.replace("https://127.0.0.1:8080", url)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "'label':" in proc.stdout and "'top_k_labels':" in proc.stdout

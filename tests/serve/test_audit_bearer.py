"""`bastion audit --model http://…/v2/models/NAME --bearer-env VAR` audits bastion's own gateway (14.7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.cli import run
from bastion.serve import GatewayConfig
from bastion.serve.config import MonitorConfig

from .conftest import Digits, Project, make_gateway, serving


def _data(tmp_path: Path, digits: Digits) -> Path:
    path = tmp_path / "held-out.npz"
    np.savez(path, x=digits.x_test[:40], y=digits.y_test[:40])
    return path


@pytest.mark.slow
def test_audit_authenticates_to_the_gateway_with_a_bearer_token(
    project: Project, digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = _data(tmp_path, digits)
    # the extraction monitor and a consumer's row limit would (rightly) stop an attacker's query pattern:
    # the audit runs with an admin token (full probabilities) against a staging gateway without the monitor
    config = GatewayConfig(monitor=MonitorConfig(enabled=False))
    with serving(make_gateway(project, digits, config)) as server:
        url = f"{server.url}/v2/models/digits"
        common = ["audit", "--model", url, "--data", str(data), "--attacks", "evasion", "--n-classes", "10"]
        common += ["--clip", "0,1"]

        # without a token the gateway refuses: one clear line, no internal error
        assert run([*common, "--out", str(tmp_path / "r0")]) == 2
        err = capsys.readouterr().err
        assert "internal error" not in err and "Traceback" not in err
        assert "401" in err or "unauthor" in err.lower() or "authent" in err.lower()

        # an unset variable is a usage error naming the variable, never its (absent) value
        assert run([*common, "--bearer-env", "BASTION_TEST_UNSET_TOKEN", "--out", str(tmp_path / "r1")]) == 2
        assert "$BASTION_TEST_UNSET_TOKEN is not set" in capsys.readouterr().err

        monkeypatch.setenv("BASTION_TEST_GATEWAY_TOKEN", project.tokens["dave"])
        code = run([*common, "--bearer-env", "BASTION_TEST_GATEWAY_TOKEN", "--out", str(tmp_path / "r2")])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert (tmp_path / "r2" / "report.json").is_file()
        assert project.tokens["dave"] not in captured.out + captured.err


def test_bearer_env_needs_an_endpoint(tmp_path: Path, digits: Digits, capsys) -> None:
    data = _data(tmp_path, digits)
    code = run(
        ["audit", "--model", str(digits.directory), "--data", str(data), "--bearer-env", "X", "--out", "r"]
    )
    assert code == 2
    assert "--bearer-env is for an http(s)://" in capsys.readouterr().err

"""A TLS key that does not belong to its certificate is refused before start-up (issue 12 item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.cli import run
from bastion.errors import ConfigError
from bastion.serve.tls import check_pair, self_signed_certificate


def _pair(directory: Path) -> tuple[Path, Path]:
    directory.mkdir()
    return self_signed_certificate(directory)


def test_matching_pair_is_accepted(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "a")
    check_pair(cert, key)


def test_mismatched_pair_is_refused(tmp_path: Path) -> None:
    cert_a, _ = _pair(tmp_path / "a")
    _, key_b = _pair(tmp_path / "b")
    with pytest.raises(ConfigError, match="does not belong"):
        check_pair(cert_a, key_b)


def test_cli_mismatched_pair_is_one_line_exit_2(
    project,
    registry_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BASTION_PASSPHRASE", "serve tests passphrase")
    cert_a, _ = _pair(tmp_path / "a")
    _, key_b = _pair(tmp_path / "b")
    args = ["serve", registry_model, "--check", "--home", str(project.home)]
    code = run([*args, "--tls-cert", str(cert_a), "--tls-key", str(key_b)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err

"""``bastion server`` refuses unsafe or inconsistent options before it opens anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.cli import run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--insecure", "--host", "0.0.0.0"],
            "--insecure (plain HTTP) is allowed only on a loopback address",
        ),
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (
            ["--insecure", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
            "--insecure and --tls-cert exclude each other",
        ),
        (["--max-upload-gib", "0"], "--max-upload-gib must be positive"),
    ],
)
def test_server_option_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["server", "--home", str(tmp_path / "home"), *args]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_server_refuses_to_start_under_bastion_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BASTION_URL", "https://127.0.0.1:1")
    assert run(["server"]) == 2
    assert "'bastion server' needs the local key ring or database" in capsys.readouterr().err


def test_server_without_a_home_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["server", "--home", str(tmp_path / "nowhere"), "--insecure"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no bastion project at") and "Traceback" not in err

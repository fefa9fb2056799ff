"""Issue 11 item 6 against a real ``bastion server`` over TLS on 127.0.0.1: a gateway's workload credential
(role ``gateway``, granted one model) pulls that model and nothing else, and ``bastion serve --server`` runs a
gateway from it without a passphrase, a key ring or a home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import bastion.client
from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.errors import AccessDenied, ConfigError
from bastion.serve.remote import build_remote_gateway, server_token_checker
from bastion.serve.server import ServeOptions
from bastion.serve.tls import self_signed_certificate

pytestmark = pytest.mark.slow  # a server thread, a trained model, a gateway, ~15 s

PASS = "gateway remote test passphrase"


@dataclass
class Team:
    home: Path
    url: str
    ca: str
    cert: str
    key: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, digits: Any, kit: Any) -> Iterator[Team]:
    from bastion.server.app import create_server_app
    from bastion.vault import init_project

    root = tmp_path_factory.mktemp("gateway-remote")
    home = root / "home"
    vault = init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast())
    tokens = {}
    try:
        vault.push(digits.directory, name="digits", env="prod")
        vault.push(digits.directory, name="fraud", env="prod")  # another team's model on the same server
        for name, role, models in [
            ("gw-digits", "gateway", ["digits"]),
            ("alice", "consumer", ["digits"]),
            ("bob", "consumer", ["fraud"]),
        ]:
            tokens[name] = vault.create_token(name=name, role=role, models=models)[1]
        with pytest.raises(Exception, match="needs at least one --model"):
            vault.create_token(name="gw-all", role="gateway")  # never a gateway for every model
    finally:
        vault.close()
    cert, key = self_signed_certificate(root / "tls")
    app = create_server_app(home=home, passphrase=PASS)
    with kit.server_thread(app, ssl=(str(cert), str(key))) as server:
        yield Team(home=home, url=server.url, ca=str(cert), cert=str(cert), key=str(key), tokens=tokens)


def _connect(team: Team, token: str) -> Any:
    return bastion.client.connect(team.url, token=token, ca=team.ca)


def test_a_gateway_credential_pulls_its_model_and_nothing_else(team: Team, tmp_path: Path) -> None:
    with _connect(team, team.tokens["gw-digits"]) as gw:
        version = gw.pull("digits@prod", out=tmp_path / "digits")
        assert version.name == "digits" and (tmp_path / "digits" / "model.safetensors").exists()
        refused = {
            "pull another model": lambda: gw.pull("fraud@prod", out=tmp_path / "fraud"),
            "pull it by version": lambda: gw.pull("fraud:1", out=tmp_path / "fraud1"),
            "list": lambda: gw.list(),
            "show": lambda: gw.show("digits@prod"),
            "push": lambda: gw.push(tmp_path / "digits", name="digits", env="prod"),
            "mint a token": lambda: gw.create_token(name="x", role="consumer", models=["fraud"]),
            "read the log": lambda: gw.log_head(),
        }
        for what, attempt in refused.items():
            with pytest.raises(AccessDenied):
                attempt()
            assert not (tmp_path / "fraud").exists() and not (tmp_path / "fraud1").exists(), what
    # the server's audit log names the gateway identity for the release and for the refusals
    from bastion.vault import open_vault

    with open_vault(home=team.home, passphrase=PASS) as owner:
        entries = [(e.actor, e.action, e.outcome) for e in owner.audit.entries()]
    assert ("gw-digits", "registry:pull", "ok") in entries
    assert ("gw-digits", "registry:pull", "denied") in entries


def test_a_gateway_built_from_the_server_serves_its_callers(team: Team, kit: Any, digits: Any) -> None:
    source = _connect(team, team.tokens["gw-digits"])
    checker = server_token_checker(lambda token: _connect(team, token))
    options = ServeOptions(model_ref="digits@prod", insecure=True)
    gateway = build_remote_gateway(options, source=source, verify_token=checker)
    source.close()
    assert gateway.model.name == "digits" and gateway.model.env == "prod"
    body = kit.infer_body(digits.x_test[:2])
    with kit.serving(gateway) as srv:
        url = f"{srv.url}/v2/models/digits/infer"
        ok = httpx.post(url, json=body, headers=kit.bearer(team.tokens["alice"]), timeout=30)
        assert ok.status_code == 200, ok.text
        assert (
            httpx.post(url, json=body, headers=kit.bearer(team.tokens["bob"]), timeout=30).status_code == 403
        )
        bad = "bst_" + "0" * 16 + "." + "A" * 43
        assert httpx.post(url, json=body, headers=kit.bearer(bad), timeout=30).status_code == 401
        # the gateway's own credential is no caller credential: it may not infer
        gw = httpx.post(url, json=body, headers=kit.bearer(team.tokens["gw-digits"]), timeout=30)
        assert gw.status_code == 403
    gateway.close()


def test_serve_from_server_cli_needs_no_passphrase_and_no_home(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_home = tmp_path / "no-home"
    monkeypatch.setenv("BASTION_HOME", str(no_home))
    monkeypatch.delenv("BASTION_PASSPHRASE", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(team.tokens["gw-digits"] + "\n")
    common = [
        "--server",
        team.url,
        "--ca",
        team.ca,
        "--tls-cert",
        team.cert,
        "--tls-key",
        team.key,
        "--check",
    ]
    assert run(["serve", "digits@prod", *common, "--token-file", str(token_file)]) == 0
    assert "pulled from" in capsys.readouterr().out
    assert not no_home.exists()  # no key ring, no database, no home was opened or created
    monkeypatch.setenv("BASTION_TOKEN", team.tokens["gw-digits"])
    assert run(["serve", "fraud@prod", *common]) == 2  # AccessDenied, one line
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    monkeypatch.delenv("BASTION_TOKEN")
    assert run(["serve", "digits@prod", *common]) == 2  # no workload token
    assert "BASTION_TOKEN or --token-file" in capsys.readouterr().err
    assert not no_home.exists()


def test_home_only_features_are_refused_not_dropped(team: Team, tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[serve.api_watermark]\nenabled = true\nkey_id = "wm"\n')
    options = ServeOptions(model_ref="digits@prod", insecure=True, config_file=str(config))
    with (
        _connect(team, team.tokens["gw-digits"]) as source,
        pytest.raises(ConfigError, match="api_watermark"),
    ):
        build_remote_gateway(options, source=source, verify_token=lambda t: None)  # type: ignore[arg-type,return-value]
    assert os.environ.get("BASTION_URL") is None

"""Issue 11 item 6 against a real ``bastion server`` over TLS on 127.0.0.1: a gateway's workload credential
(role ``gateway``, granted one model) gets that model only through attested release (the approved key-release
policy, its attester key, a single-use challenge), never another model, and ``bastion serve --server`` runs a
gateway from it without a passphrase, a key ring or a home."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import bastion.client
from bastion.cli import run
from bastion.client.gateway import attested_pull, introspect
from bastion.crypto.kdf import KdfParams
from bastion.errors import AccessDenied, ConfigError, PolicyViolation
from bastion.serve.remote import (
    approve_remote_gateway,
    build_remote_gateway,
    gateway_evidence,
    remote_gateway_config,
    server_token_checker,
)
from bastion.serve.server import ServeOptions
from bastion.serve.tls import self_signed_certificate

pytestmark = pytest.mark.slow  # a server thread, a trained model, a gateway, ~20 s

PASS = "gateway remote test passphrase"
OPTIONS = ServeOptions(model_ref="digits@prod", insecure=True)


@dataclass
class Team:
    home: Path
    url: str
    ca: str
    cert: str
    key: str
    tokens: dict[str, str]
    attester: Ed25519PrivateKey
    attester_file: Path


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, digits: Any, kit: Any) -> Iterator[Team]:
    from bastion.server.app import create_server_app
    from bastion.vault import init_project

    root = tmp_path_factory.mktemp("gateway-remote")
    home = root / "home"
    attester = Ed25519PrivateKey.generate()
    attester_file = root / "attester.pem"
    attester_file.write_bytes(_pem(attester))
    vault = init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast())
    tokens = {}
    try:
        for name in ("digits", "fraud", "churn"):  # other teams' models on the same server
            vault.push(digits.directory, name=name, env="prod")
        for name, role, models in [
            ("gw-digits", "gateway", ["digits"]),
            ("gw-churn", "gateway", ["churn"]),
            ("alice", "consumer", ["digits"]),
            ("bob", "consumer", ["fraud"]),
            ("erin", "data-scientist", []),
        ]:
            tokens[name] = vault.create_token(name=name, role=role, models=models)[1]
        with pytest.raises(Exception, match="needs at least one --model"):
            vault.create_token(name="gw-all", role="gateway")  # never a gateway for every model
        approve_remote_gateway(
            vault=vault, options=OPTIONS, attester_public_pem=_pub(attester)
        )  # digits only
    finally:
        vault.close()
    cert, key = self_signed_certificate(root / "tls")
    app = create_server_app(home=home, passphrase=PASS)
    with kit.server_thread(app, ssl=(str(cert), str(key))) as server:
        yield Team(home, server.url, str(cert), str(cert), str(key), tokens, attester, attester_file)


def _connect(team: Team, token: str) -> Any:
    return bastion.client.connect(team.url, token=token, ca=team.ca)


def _attest(key: Ed25519PrivateKey, digest: str | None = None) -> Any:
    config_digest = digest or remote_gateway_config(OPTIONS).digest()
    return lambda challenge: gateway_evidence(
        attester_key=key, challenge=challenge, config_digest=config_digest
    )


def _entries(team: Team) -> list[tuple[str, str, str]]:
    from bastion.vault import open_vault

    with open_vault(home=team.home, passphrase=PASS) as owner:
        return [(e.actor, e.action, e.outcome) for e in owner.audit.entries()]


def test_a_gateway_token_alone_gets_nothing(team: Team, tmp_path: Path) -> None:
    with _connect(team, team.tokens["gw-digits"]) as gw:
        with pytest.raises(PolicyViolation, match="attested release"):
            gw.pull("digits@prod", out=tmp_path / "plain")  # the plain pull every other role uses
        assert not (tmp_path / "plain").exists()
        refused = {
            "challenge for another model": lambda: attested_pull(
                gw, "fraud@prod", out=tmp_path / "fraud", attest=_attest(team.attester)
            ),
            "pull another model": lambda: gw.pull("fraud@prod", out=tmp_path / "fraud"),
            "list": lambda: gw.list(),
            "show": lambda: gw.show("digits@prod"),
            "push": lambda: gw.push(tmp_path, name="digits", env="prod"),
            "mint a token": lambda: gw.create_token(name="x", role="consumer", models=["fraud"]),
            "read the log": lambda: gw.log_head(),
        }
        for what, attempt in refused.items():
            with pytest.raises((AccessDenied, PolicyViolation)):
                attempt()
            assert not (tmp_path / "fraud").exists(), what
    assert ("gw-digits", "registry:pull", "denied") in _entries(team)


def test_attested_release_of_the_approved_model_only(team: Team, tmp_path: Path) -> None:
    with _connect(team, team.tokens["gw-digits"]) as gw:
        version = attested_pull(gw, "digits@prod", out=tmp_path / "ok", attest=_attest(team.attester))
        assert version.name == "digits" and (tmp_path / "ok" / "model.safetensors").exists()
        stolen_token_other_key = _attest(Ed25519PrivateKey.generate())
        with pytest.raises(PolicyViolation, match="did not verify"):
            attested_pull(gw, "digits@prod", out=tmp_path / "k", attest=stolen_token_other_key)
        with pytest.raises(PolicyViolation, match="configuration digest differs"):
            attested_pull(
                gw, "digits@prod", out=tmp_path / "c", attest=_attest(team.attester, "sha256:" + "0" * 64)
            )
        # a replayed challenge: the nonce is single-use
        seen: list[dict[str, Any]] = []

        def keep(challenge: Any) -> Any:
            evidence = _attest(team.attester)(challenge)
            seen.append({"nonce": challenge["nonce"], "evidence": evidence})
            return evidence

        attested_pull(gw, "digits@prod", out=tmp_path / "first", attest=keep)
        replay = httpx.post(
            f"{team.url}/v1/gateway/pull",
            json=seen[0],
            headers={"Authorization": f"Bearer {team.tokens['gw-digits']}"},
            verify=team.ca,
        )
        assert replay.status_code >= 400 and "reused challenge" in replay.json()["message"]
        for d in ("k", "c"):
            assert not (tmp_path / d).exists()
    with (
        _connect(team, team.tokens["gw-churn"]) as churn,
        pytest.raises(PolicyViolation, match="no approved"),
    ):
        attested_pull(churn, "churn@prod", out=tmp_path / "churn", attest=_attest(team.attester))
    releases = [(a, o) for a, act, o in _entries(team) if act == "serve:key-release"]
    assert ("gw-digits", "ok") in releases and ("gw-digits", "denied") in releases
    assert ("gw-churn", "denied") in releases


def test_evidence_is_bound_to_the_released_version() -> None:
    challenge = {"nonce": "ab" * 16, "ref": "digits:1", "model_digest": "sha256:" + "1" * 64}
    ev = gateway_evidence(attester_key=Ed25519PrivateKey.generate(), challenge=challenge, config_digest="d")
    claims = json.loads(base64.b64decode(ev["payload"]))
    assert claims["model_ref"] == "digits:1" and claims["model_digest"] == challenge["model_digest"]
    assert claims["nonce"] == challenge["nonce"] and claims["config_digest"] == "d"


class _Source:
    def __init__(self, remote: Any) -> None:
        self.remote = remote

    def attested_pull(self, ref: str, *, out: Any, attest: Any) -> Any:
        return attested_pull(self.remote, ref, out=out, attest=attest)


def test_a_gateway_built_from_the_server_serves_its_callers(team: Team, kit: Any, digits: Any) -> None:
    remote = _connect(team, team.tokens["gw-digits"])
    checker = server_token_checker(lambda token: introspect(remote, token))
    gateway = build_remote_gateway(
        OPTIONS, source=_Source(remote), verify_token=checker, attester_key=team.attester
    )
    assert gateway.model.name == "digits" and gateway.model.env == "prod"
    body = kit.infer_body(digits.x_test[:2])
    with kit.serving(gateway) as srv:
        url = f"{srv.url}/v2/models/digits/infer"
        ok = httpx.post(url, json=body, headers=kit.bearer(team.tokens["alice"]), timeout=30)
        assert ok.status_code == 200, ok.text
        # bob's token is valid but not for a model this gateway serves: the server does not say who he is
        # (the same 401 as a made-up token, issue 11 F6)
        assert (
            httpx.post(url, json=body, headers=kit.bearer(team.tokens["bob"]), timeout=30).status_code == 401
        )
        before = len(_entries(team))
        for i in range(5):  # a spray of random tokens: refused, and the server's log does not grow
            bad = "bst_" + f"{i:016x}" + "." + "A" * 43
            assert httpx.post(url, json=body, headers=kit.bearer(bad), timeout=30).status_code == 401
        assert len(_entries(team)) == before
        # the baseline: the same token at the server's own door is logged (what the gateway path avoids)
        direct = httpx.get(f"{team.url}/v1/whoami", headers=kit.bearer(bad), verify=team.ca, timeout=30)
        assert direct.status_code == 401 and len(_entries(team)) == before + 1
        # the gateway's own credential is no caller credential: it may not infer
        gw = httpx.post(url, json=body, headers=kit.bearer(team.tokens["gw-digits"]), timeout=30)
        assert (
            gw.status_code == 401
        )  # not one of its callers (no model:infer): the server does not confirm it
    gateway.close()
    with _connect(team, team.tokens["alice"]) as alice, pytest.raises(AccessDenied, match="may not check"):
        introspect(alice, team.tokens["bob"])  # only gateway identities may ask who a caller is
    remote.close()


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
    key = ["--attester-key", str(team.attester_file)]
    assert run(["serve", "digits@prod", *common, *key, "--token-file", str(token_file)]) == 0
    assert "pulled from" in capsys.readouterr().out
    assert not no_home.exists()  # no key ring, no database, no home was opened or created
    monkeypatch.setenv("BASTION_TOKEN", team.tokens["gw-digits"])
    assert run(["serve", "fraud@prod", *common, *key]) == 2  # AccessDenied, one line
    err = capsys.readouterr().err
    # one error line (after the trust-on-first-use warning for the response key: no --response-key given here)
    lines = err.splitlines()
    assert lines[-1].startswith("error:") and "Traceback" not in err
    assert all(line.startswith(("warning:", "error:")) for line in lines)
    assert run(["serve", "digits@prod", *common]) == 2  # no attester key: refused before contacting
    assert "--attester-key" in capsys.readouterr().err
    # $BASTION_URL (the remote CLI's switch) names the server too
    monkeypatch.setenv("BASTION_URL", team.url)
    assert run(["serve", "digits@prod", *common[2:], *key, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "digits"
    monkeypatch.delenv("BASTION_URL")
    monkeypatch.delenv("BASTION_TOKEN")
    assert run(["serve", "digits@prod", *common, *key]) == 2  # no workload token
    assert "BASTION_TOKEN or --token-file" in capsys.readouterr().err
    assert not no_home.exists()


def test_only_an_admin_approves_a_gateway_attester(team: Team, tmp_path: Path) -> None:
    from bastion.vault import open_vault

    with (
        open_vault(home=team.home, passphrase=PASS, token=team.tokens["erin"]) as ds,
        pytest.raises(AccessDenied),
    ):
        approve_remote_gateway(
            vault=ds, options=OPTIONS, attester_public_pem=_pub(Ed25519PrivateKey.generate())
        )


def test_home_only_features_are_refused_not_dropped(team: Team, tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[serve.api_watermark]\nenabled = true\nkey_id = "wm"\n')
    options = ServeOptions(model_ref="digits@prod", insecure=True, config_file=str(config))
    with (
        _connect(team, team.tokens["gw-digits"]) as remote,
        pytest.raises(ConfigError, match="api_watermark"),
    ):
        build_remote_gateway(
            options,
            source=_Source(remote),
            verify_token=lambda t: None,  # type: ignore[arg-type,return-value]
            attester_key=team.attester,
        )


def test_an_approval_releases_the_approved_version_only(team: Team, tmp_path: Path, digits: Any) -> None:
    # issue 11 F9: the approval was stored per NAME, so approving digits:1 released every later version
    # (a new, unreviewed digits:2 pushed to prod went out to the gateway on the old approval)
    import shutil

    from bastion.vault import open_vault

    newer = tmp_path / "digits-v2"
    shutil.copytree(digits.directory, newer)
    (newer / "notes.txt").write_text("an unreviewed change\n", encoding="utf-8")
    with open_vault(home=team.home, passphrase=PASS) as owner:
        v2 = owner.push(newer, name="digits", env="prod")
        v1 = owner.show("digits:1")
    assert v2.version == 2 and v2.manifest_digest != v1.manifest_digest
    with _connect(team, team.tokens["gw-digits"]) as gw:
        with pytest.raises(PolicyViolation, match="only the version approved"):
            attested_pull(gw, "digits@prod", out=tmp_path / "v2", attest=_attest(team.attester))
        assert not (tmp_path / "v2").exists()
        released = attested_pull(gw, "digits:1", out=tmp_path / "v1", attest=_attest(team.attester))
        assert released.version == 1

"""The cold review's attacks on the issue-12 hardening, each reproduced (over HTTP against a real uvicorn
gateway on 127.0.0.1 where the attack is over HTTP) and shown refused."""

from __future__ import annotations

import dataclasses
import secrets

import httpx
import pytest

from bastion.errors import ConfigError
from bastion.serve import Authenticator, Gateway, ServedModel
from bastion.serve.config import ConnectionsConfig, GatewayConfig, RateLimitConfig, config_from_mapping
from bastion.serve.server import token_verifier

INFER = "/v2/models/digits/infer"


# F1: X-Forwarded-For from any client forged its address past the per-address limits.


def _failure_gateway(project, digits, connections: ConnectionsConfig | None = None) -> Gateway:
    model = ServedModel(name="digits", version="1", adapter=digits.adapter, digest="sha256:t", env="dev")
    cfg = GatewayConfig(
        rate_limit=dataclasses.replace(RateLimitConfig(), auth_failures="5/minute"),
        connections=connections or ConnectionsConfig(),
    )
    auth = Authenticator(verify_token=token_verifier(project.vault))
    return Gateway(model=model, config=cfg, authenticator=auth, audit=project.vault.audit)


def _forged_failures(client: httpx.Client, kit, n: int) -> list[int]:
    codes = []
    for i in range(n):
        headers = {
            **kit.bearer("bst_" + secrets.token_urlsafe(16)),
            "X-Forwarded-For": f"10.9.{i // 250}.{i % 250}",
        }
        codes.append(client.post(INFER, json={"inputs": []}, headers=headers).status_code)
    return codes


def test_forged_forwarded_for_does_not_reset_the_auth_failure_limit(project, digits, kit) -> None:
    gateway = _failure_gateway(project, digits)
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        codes = _forged_failures(client, kit, 30)
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}  # the TCP peer, not the header, is the address


def test_forwarded_for_is_honoured_only_from_configured_proxies(project, digits, kit) -> None:
    gateway = _failure_gateway(project, digits, ConnectionsConfig(trusted_proxies=("127.0.0.1",)))
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        codes = _forged_failures(client, kit, 12)
    assert set(codes) == {401}  # behind a trusted proxy each forwarded client has its own window


def test_serve_run_turns_proxy_headers_off(project) -> None:
    from bastion.serve.connections import uvicorn_options
    from bastion.serve.server import ServeOptions, _uvicorn_common

    opts = {**_uvicorn_common(ServeOptions(model_ref="x"), None), **uvicorn_options(ConnectionsConfig())}
    assert opts["proxy_headers"] is False
    cfg = config_from_mapping({"connections": {"trusted_proxies": ["10.0.0.0/8"]}})
    assert uvicorn_options(cfg.connections)["forwarded_allow_ips"] == "10.0.0.0/8"
    for bad in (["*"], "10.0.0.1", ["not-an-ip"]):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            config_from_mapping({"connections": {"trusted_proxies": bad}})

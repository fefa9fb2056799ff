"""The cold review's attacks on the issue-12 hardening, each reproduced (over HTTP against a real uvicorn
gateway on 127.0.0.1 where the attack is over HTTP) and shown refused."""

from __future__ import annotations

import dataclasses
import secrets
import socket

import httpx
import pytest

from bastion.errors import BudgetExhausted, ConfigError
from bastion.serve import Authenticator, Gateway, ServedModel
from bastion.serve.config import ConnectionsConfig, GatewayConfig, RateLimitConfig, config_from_mapping
from bastion.serve.interface import Window
from bastion.serve.ratelimit import MemoryRateLimitStorage
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


def test_bastion_serve_process_ignores_forwarded_for(own_home, serve_process, kit) -> None:
    """The same attack on ``bastion serve`` itself (its own uvicorn configuration, default limits)."""
    home, ref, _ = own_home
    proc = serve_process(home, ref).wait_ready()
    with httpx.Client(base_url=proc.url) as client:
        codes = _forged_failures(client, kit, 70)
    assert codes[:60] == [401] * 60 and set(codes[60:]) == {429}


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


# F2: a flood of unauthenticated addresses evicted an identity's row log (1,536 rows/min past a 1,000 limit).


def _unauthenticated_from(port: int, source: str) -> bytes:
    """One unauthenticated inference request from the loopback address ``source`` (all of 127/8 is local)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer bst_nope\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        return sock.recv(64)


def test_address_flood_does_not_evict_an_identity_row_log(project, digits, kit) -> None:
    import numpy as np

    rl = dataclasses.replace(RateLimitConfig(), rows_per_role={"consumer": "20/minute"}, max_keys=1000)
    gateway = kit.make_gateway(project, digits, GatewayConfig(rate_limit=rl), audit=None)
    x = np.repeat(digits.x_test[:1], 10, axis=0)
    alice = kit.bearer(project.tokens["alice"])
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        before = [client.post(INFER, json=kit.infer_body(x), headers=alice).status_code for _ in range(3)]
        statuses = {
            _unauthenticated_from(srv.port, f"127.3.{i // 250}.{i % 250 + 1}")[9:12] for i in range(1100)
        }
        after = client.post(INFER, json=kit.infer_body(x[:1]), headers=alice).status_code
    assert before == [200, 200, 429] and statuses <= {b"401", b"429"}
    assert after == 429  # the row log survived the flood: still 20 rows in the window


def test_memory_tables_never_evict_a_live_window() -> None:
    storage = MemoryRateLimitStorage(max_keys=1000)
    rows = Window(amount=1000, seconds=60.0, spec="1000/minute")
    assert storage.acquire("rows:alice", cost=1000, window=rows).allowed
    per_addr = Window(amount=5, seconds=60.0, spec="5/minute")
    admitted = sum(storage.acquire(f"addr:{i}", cost=1, window=per_addr).allowed for i in range(5000))
    assert admitted == 1000  # the address table is full of live windows: new addresses are refused
    assert not storage.acquire("rows:alice", cost=1, window=rows).allowed
    for i in range(5000):  # a check of cost 0 (the auth-failure test) creates nothing
        storage.acquire(f"fail:{i}", cost=0, window=per_addr)
    assert len(storage) == 1001


def test_theft_state_of_an_identity_survives_an_address_flood(digits) -> None:
    from bastion.serve.theft import TheftDefence, TheftPolicy

    guard = TheftDefence(
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
        secret=b"review-findings-secret-of-32-byt",
        center=0.5,
        policy=TheftPolicy(daily_rows=300, max_consumers=16),
    )
    x = digits.x_test[:100]
    p = digits.adapter.predict_proba(x)
    for _ in range(3):
        guard.respond(consumers=("eve", "addr:10.0.0.1"), x=x, proba=p)
    for i in range(40):
        guard.respond(consumers=("mallory", f"addr:10.1.0.{i}"), x=x[:1], proba=p[:1])
    with pytest.raises(BudgetExhausted):
        guard.respond(consumers=("eve", "addr:10.0.0.2"), x=x[:1], proba=p[:1])


# F3: the approved digest hashed only the config text; a swapped JWT key file still got the key released.


def _pem(tmp_path, name: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def own_home(tmp_path_factory, digits):
    """A home of its own (its approvals must not change the session's shared one)."""
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path_factory.mktemp("review-home") / "home"
    vault = init_project(home=home, passphrase="serve tests passphrase", kdf=KdfParams.unsafe_fast())
    ref = vault.push(digits.directory, name="digits").ref
    vault.close()
    return home, ref, "serve tests passphrase"


def test_swapped_jwt_key_file_after_approval_refuses_the_key_release(own_home, tmp_path) -> None:
    from bastion.errors import PolicyViolation
    from bastion.serve.server import ServeOptions, approve_gateway, build_gateway

    home, ref, passphrase = own_home
    pem = tmp_path / "idp.pub.pem"
    pem.write_bytes(_pem(tmp_path, "idp"))
    conf = tmp_path / "gateway.toml"
    conf.write_text(f'[serve.jwt]\npublic_key_file = "{pem}"\nissuer = "https://idp"\naudience = "bastion"\n')
    opts = ServeOptions(model_ref=ref, home=str(home), config_file=str(conf))
    approve_gateway(opts, passphrase=passphrase)
    build_gateway(opts, passphrase=passphrase).close()  # approved as is: released
    pem.write_bytes(_pem(tmp_path, "attacker"))  # the attacker's key: it would accept a forged admin JWT
    with pytest.raises(PolicyViolation, match="key release denied"):
        build_gateway(opts, passphrase=passphrase)


# F6: INT64/UINT64 beyond range wrapped (float64 before the range check); shape took "1", true and 1.0.


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("INT64", 2**63), ("INT64", -(2**63) - 1), ("UINT64", 2**64), ("UINT64", -1), ("INT64", 9.3e18)],
)
def test_out_of_range_integers_are_refused_not_wrapped(datatype: str, value: int | float) -> None:
    from bastion.errors import InvalidInput
    from bastion.serve.protocol import InferenceRequest, decode_tensor

    req = InferenceRequest.model_validate(
        {"inputs": [{"name": "x", "shape": [1], "datatype": datatype, "data": [value]}]}
    )
    with pytest.raises(InvalidInput, match="range"):
        decode_tensor(req.inputs[0], max_elements=10)


def test_integer_edges_are_exact() -> None:
    from bastion.serve.protocol import InferenceRequest, decode_tensor

    data = [2**63 - 1, -(2**63), 3.0]
    req = InferenceRequest.model_validate(
        {"inputs": [{"name": "x", "shape": [3], "datatype": "INT64", "data": data}]}
    )
    assert decode_tensor(req.inputs[0], max_elements=10).tolist() == [2**63 - 1, -(2**63), 3]


@pytest.mark.parametrize("dim", ['"1"', "true", "1.0"])
def test_shape_elements_must_be_json_integers(project, digits, kit, dim: str) -> None:
    body = (
        '{"inputs":[{"name":"input","shape":['
        + dim
        + ',64],"datatype":"FP32","data":'
        + str([0.0] * 64)
        + "}]}"
    )
    gateway = kit.make_gateway(project, digits, audit=None)
    alice = {**kit.bearer(project.tokens["alice"]), "Content-Type": "application/json"}
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        ok = body.replace(dim, "1", 1)
        assert client.post(INFER, content=ok, headers=alice).status_code == 200
        assert client.post(INFER, content=body, headers=alice).status_code == 400


# Minor: JWT exp as a numeric string (cached past expiry), exp=10**400 (500), sub="" (accepted).


def test_odd_jwt_exp_and_empty_subject_are_401(project, digits, kit, tmp_path) -> None:
    import time

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from bastion.serve.auth import JwtVerifier
    from bastion.serve.config import JwtConfig

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    jwt_cfg = JwtConfig(public_key_file=str(tmp_path / "idp.pem"), issuer="https://idp", audience="bastion")
    gateway = kit.make_gateway(
        project, digits, GatewayConfig(jwt=jwt_cfg), jwt=JwtVerifier(jwt_cfg), audit=None
    )

    def token(**claims: object) -> dict[str, str]:
        body = {"sub": "mallory", "iss": "https://idp", "aud": "bastion", "role": "consumer"}
        body.update(models=["digits"], exp=int(time.time()) + 300)
        body.update(claims)
        return kit.bearer(jwt.encode(body, key, algorithm="ES256"))

    req = kit.infer_body(digits.x_test[0])
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        assert client.post(INFER, json=req, headers=token()).status_code == 200
        soon = str(int(time.time()) + 300)
        for bad in ({"exp": soon}, {"exp": 10**400}, {"exp": True}, {"sub": ""}, {"sub": "  "}, {"sub": 7}):
            assert client.post(INFER, json=req, headers=token(**bad)).status_code == 401, bad

"""``bastion.connect``: the Python API against a real server (uvicorn over TLS on 127.0.0.1, in a thread)
returns the local Vault's dataclasses and raises its exceptions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._support.server_thread import ServerThread

import bastion
from bastion.access import Identity
from bastion.client import NotAvailableRemotely, RemoteVault
from bastion.crypto.interface import KekInfo
from bastion.crypto.kdf import KdfParams
from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    InvalidInput,
    NotFound,
    ServiceError,
)
from bastion.serve.tls import self_signed_certificate
from bastion.server import ServerState, create_server_app
from bastion.store.auditlog import (
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
)
from bastion.vault import Annotation, ArtifactVersion, KeyRotation, init_project

PASSPHRASE = "client tests passphrase"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("client-team")
    vault = init_project(home=root / "home", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())
    tokens = {}
    for name, role in [("adm", "admin"), ("ds", "data-scientist"), ("aud", "auditor")]:
        _, tokens[name] = vault.create_token(name=name, role=role)
    vault.close()
    tls = self_signed_certificate(root / "tls")
    state = ServerState.open(home=root / "home", passphrase=PASSPHRASE)
    with ServerThread(create_server_app(state=state), ssl=tls) as srv:
        yield {"url": srv.url, "ca": tls[0], "tokens": tokens, "home": root / "home"}
    state.close()


def connect(team: dict[str, Any], who: str) -> RemoteVault:
    return bastion.connect(team["url"], token=team["tokens"][who], ca=team["ca"])


def test_registry_round_trip_returns_the_local_dataclasses(team: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    np.save(src / "w.npy", np.arange(100, dtype=np.float32))
    with connect(team, "ds") as v:
        assert v.identity == Identity(
            id=v.identity.id, name="ds", role="data-scientist", models=("*",), envs=v.identity.envs
        )
        pushed = v.push(src, name="api-model", tags={"k": "v"}, metadata={"epochs": 3})
        assert isinstance(pushed, ArtifactVersion) and pushed.ref == "api-model:1"
        assert pushed.tags == {"k": "v"} and pushed.metadata == {"epochs": 3}
        assert v.show("api-model") == pushed
        assert v.verify("api-model:1").manifest_digest == pushed.manifest_digest
        assert [x.ref for x in v.list()] == ["api-model:1"]
        note = v.annotate("api-model:1", namespace="privacy", data={"epsilon": 1.5})
        assert isinstance(note, Annotation) and note.created_by == "ds"
        assert v.annotations("api-model:1", namespace="privacy") == (note,)
        promoted = v.promote("api-model:1", to="staging")
        assert promoted.env == "staging"
        pulled = v.pull("api-model:1", out=tmp_path / "out")
        assert pulled.ref == "api-model:1"
        assert (tmp_path / "out" / "w.npy").read_bytes() == (src / "w.npy").read_bytes()
        assert (tmp_path / "out.pub.pem").is_file()
        with pytest.raises(AccessDenied, match="may not registry:promote"):
            v.promote("api-model:1", to="prod")
        with pytest.raises(NotFound, match="no artifact named 'nope'"):
            v.show("nope")
        with pytest.raises(InvalidInput):
            v.push(src, name="bad name!")


def test_access_tokens_keys_and_log(team: dict[str, Any]) -> None:
    with connect(team, "adm") as v:
        ident, token = v.create_token(name="api-dep", role="deployer")
        assert ident.role == "deployer" and token.startswith("bst_")
        assert "api-dep" in {i.name for i in v.access.list_identities()}
        widened = v.access.grant(name="api-dep", envs=["prod"])
        assert "prod" in widened.envs
        tokens = v.access.list_tokens()
        tid = next(t.id for t in tokens if t.identity == "api-dep")
        rotation = v.rotate_keys(env="dev")
        assert isinstance(rotation, KeyRotation) and rotation.kek_version == 2
        keys = v.list_keys()
        assert all(isinstance(k, KekInfo) for k in keys)
        v.retire_key(env="dev", version=1)
        assert any(k.env == "dev" and k.version == 1 and k.retired for k in v.list_keys())
        checked = v.log_verify()
        assert isinstance(checked, LogVerification) and checked.size > 0 and checked.witnesses == ()
        head = v.log_head()
        assert isinstance(head, SignedTreeHead) and head.size >= checked.size
        assert v.log_verify(trusted=head).size >= head.size
        assert isinstance(v.log_prove(0), InclusionProof)
        assert isinstance(v.log_consistency(1, head.size), ConsistencyProof)
        entries = v.log_entries(start=0, limit=3)
        assert [e.index for e in entries] == [0, 1, 2] and all(isinstance(e, AuditEntry) for e in entries)
        assert "BEGIN PUBLIC KEY" in v.log_public_key_pem()
        with bastion.connect(team["url"], token=token, ca=team["ca"]) as dep:
            assert dep.identity.name == "api-dep"
            v.access.revoke_token(tid)
            with pytest.raises(AuthenticationFailed, match="invalid API token"):
                dep.list()  # the next call after the revocation


def test_what_needs_local_state_is_refused_not_faked(team: dict[str, Any]) -> None:
    with connect(team, "adm") as v:
        for name in ("engine", "keys", "materialize", "settings"):
            with pytest.raises(NotAvailableRemotely, match="not available with BASTION_URL"):
                getattr(v, name)
        assert not hasattr(v, "engine")  # an AttributeError too, for code that probes
        with pytest.raises(NotAvailableRemotely):
            v.access.seal_all()


def test_connect_refuses_bad_tokens_urls_and_unknown_cas(team: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        bastion.connect(team["url"], token="", ca=team["ca"])
    with pytest.raises(ConfigError, match="not a bastion API token"):
        bastion.connect(team["url"], token="hunter2", ca=team["ca"])
    with pytest.raises(ConfigError, match="only to a loopback"):
        bastion.connect("http://example.com", token=team["tokens"]["adm"])
    with pytest.raises(ConfigError, match="credentials"):
        bastion.connect("https://user:pw@example.com", token=team["tokens"]["adm"])
    untrusted = bastion.connect(team["url"], token=team["tokens"]["adm"])  # the system CAs only
    with pytest.raises(ServiceError, match="TLS verification") as info:
        untrusted.list()
    assert team["tokens"]["adm"] not in str(info.value)
    with pytest.raises(AuthenticationFailed):
        bastion.connect(team["url"], token="bst_0123456789abcdef.wrong", ca=team["ca"]).list()


def test_errors_travel_as_json_without_tracebacks_or_secrets(team: dict[str, Any]) -> None:
    import httpx

    r = httpx.get(f"{team['url']}/v1/registry/versions", verify=str(team["ca"]))
    assert r.status_code == 401 and r.json() == {
        "error": "AuthenticationFailed",
        "message": "missing credentials",
    }
    auth = {"Authorization": f"Bearer {team['tokens']['ds']}"}
    r = httpx.get(f"{team['url']}/v1/log/head", headers=auth, verify=str(team["ca"]))
    assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
    r = httpx.post(f"{team['url']}/v1/keys/retire", json={"env": 1}, headers=auth, verify=str(team["ca"]))
    assert r.status_code == 400 and r.json()["error"] == "InvalidInput"
    r = httpx.get(f"{team['url']}/v1/nowhere", headers=auth, verify=str(team["ca"]))
    assert r.status_code == 404 and set(r.json()) == {"error", "message"}
    for resp in (r,):
        assert "Traceback" not in resp.text and PASSPHRASE not in resp.text


def test_jwt_bearer_acts_as_its_claims(tmp_path: Path) -> None:
    """``[serve.jwt]`` in the home: the server accepts the gateway's JWTs too (role, models from claims)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "jwt.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    home = tmp_path / "home"
    init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast()).close()
    with open(home / "bastion.toml", "a", encoding="utf-8") as fh:
        fh.write(f'\n[serve.jwt]\npublic_key_file = "{pub}"\nissuer = "idp"\naudience = "bastion"\n')
    tls = self_signed_certificate(tmp_path / "tls")
    state = ServerState.open(home=home, passphrase=PASSPHRASE)
    claims = {
        "sub": "jwt-auditor",
        "iss": "idp",
        "aud": "bastion",
        "role": "auditor",
        "exp": time.time() + 60,
    }
    token = jwt.encode(claims, key, algorithm="ES256")
    expired = jwt.encode(claims | {"exp": time.time() - 60}, key, algorithm="ES256")
    import httpx

    try:
        with ServerThread(create_server_app(state=state), ssl=tls) as srv:
            r = httpx.get(
                f"{srv.url}/v1/whoami", headers={"Authorization": f"Bearer {token}"}, verify=str(tls[0])
            )
            assert (
                r.status_code == 200 and r.json()["role"] == "auditor" and r.json()["name"] == "jwt-auditor"
            )
            r = httpx.get(
                f"{srv.url}/v1/log/head", headers={"Authorization": f"Bearer {token}"}, verify=str(tls[0])
            )
            assert r.status_code == 200
            r = httpx.get(
                f"{srv.url}/v1/tokens", headers={"Authorization": f"Bearer {token}"}, verify=str(tls[0])
            )
            assert r.status_code == 403
            r = httpx.get(
                f"{srv.url}/v1/whoami", headers={"Authorization": f"Bearer {expired}"}, verify=str(tls[0])
            )
            assert r.status_code == 401 and r.json() == {
                "error": "AuthenticationFailed",
                "message": "invalid JWT",
            }
    finally:
        state.close()


def test_request_bodies_are_bounded(team: dict[str, Any], tmp_path: Path) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {team['tokens']['adm']}"}
    big = b'{"ref": "x", "namespace": "audit", "data": {"k": "' + b"a" * (17 << 20) + b'"}}'
    r = httpx.post(f"{team['url']}/v1/registry/annotate", content=big, headers=auth, verify=str(team["ca"]))
    assert r.status_code == 413 and r.json()["error"] == "InvalidInput"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield big

    r = httpx.post(
        f"{team['url']}/v1/registry/annotate", content=chunked(), headers=auth, verify=str(team["ca"])
    )
    assert r.status_code == 413 and r.json()["error"] == "InvalidInput"  # the guard answers as it counts


def test_upload_limit_refuses_and_leaves_no_spool(tmp_path: Path) -> None:
    from bastion.server import ServerSettings

    home = tmp_path / "home"
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())
    _, token = v.create_token(name="a", role="admin")
    v.close()
    tls = self_signed_certificate(tmp_path / "tls")
    state = ServerState.open(
        home=home, passphrase=PASSPHRASE, settings=ServerSettings(max_upload_bytes=64 << 10)
    )
    src = tmp_path / "m"
    src.mkdir()
    np.save(src / "w.npy", np.zeros(1 << 18, dtype=np.float32))  # 1 MiB
    try:
        with ServerThread(create_server_app(state=state), ssl=tls) as srv:
            with bastion.connect(srv.url, token=token, ca=tls[0]) as remote:
                with pytest.raises(InvalidInput, match=r"larger than|more than"):
                    remote.push(src, name="too-big")
                assert remote.list() == []
            assert list((home / "server-spool").iterdir()) == []
    finally:
        state.close()


@pytest.mark.parametrize("limit", [None, "3/minute"], ids=["no-limit", "limited"])
def test_bad_token_flood_is_cut_off_per_address(tmp_path: Path, limit: str | None) -> None:
    """Failed authentications are audit-logged in aggregate (issue 11 F5: one entry per failure let a flood of
    made-up tokens grow the signed log by one entry per request): the first of an address at once, the rest of
    its minute as one counted entry (written at the latest at shutdown). With the per-address limit the
    address is also refused (429) after 3, before any lookup."""
    import httpx

    from bastion.server import ServerSettings
    from bastion.vault import open_vault

    home = tmp_path / "home"
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())
    _, token = v.create_token(name="a", role="admin")
    v.close()
    tls = self_signed_certificate(tmp_path / "tls")
    settings = ServerSettings(auth_failures=limit or "100000/minute")
    state = ServerState.open(home=home, passphrase=PASSPHRASE, settings=settings)
    statuses = []
    try:
        with (
            ServerThread(create_server_app(state=state), ssl=tls) as srv,
            httpx.Client(verify=str(tls[0])) as http,
        ):
            for i in range(10):
                bad = {"Authorization": f"Bearer bst_{i:016x}.nope"}
                statuses.append(http.get(f"{srv.url}/v1/whoami", headers=bad).status_code)
            good = http.get(f"{srv.url}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    finally:
        state.close()
    with open_vault(home=home, passphrase=PASSPHRASE) as owner:
        denied = [e for e in owner.log_entries() if e.action == "auth" and e.outcome == "denied"]
    counts = [e.details["count"] for e in denied]
    assert len(denied) == 2 and counts[0] == 1  # not one entry per bad token
    if limit is None:
        assert statuses == [401] * 10 and sum(counts) == 10 and good.status_code == 200
    else:
        assert statuses == [401] * 3 + [429] * 7 and sum(counts) == 11  # the refused good one counts too
        assert good.status_code == 429 and int(good.headers["Retry-After"]) >= 1
        assert good.json()["error"] == "AuthenticationFailed"


def test_truncated_upload_is_refused_and_leaves_no_spool(team: dict[str, Any], tmp_path: Path) -> None:
    import json

    import httpx

    from bastion.server.tarstream import bytes_member

    body = b"".join(bytes_member("push.json", json.dumps({"name": "cut", "source": "dir"}).encode()))
    body += b"".join(bytes_member("files/w.bin", b"x" * 100_000))[:50_000]  # the stream stops mid-file
    auth = {"Authorization": f"Bearer {team['tokens']['adm']}", "Content-Type": "application/x-tar"}
    r = httpx.post(f"{team['url']}/v1/registry/push", content=body, headers=auth, verify=str(team["ca"]))
    assert r.status_code == 400 and r.json()["error"] == "InvalidInput"
    assert list((team["home"] / "server-spool").iterdir()) == []


def test_the_client_needs_no_server_extra() -> None:
    """A notebook with ``bastion.connect`` imports neither FastAPI nor uvicorn (the [serve] extra)."""
    import subprocess
    import sys

    code = "import sys, bastion; bastion.connect; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('fastapi', 'starlette', 'uvicorn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

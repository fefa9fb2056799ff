"""Issue 17 M2: team mode obeys ``bastion respond``.

(a) ``bastion server`` checks the signed response state (with the audit log's record, ``load_current``) before
every authenticated request: a blocked identity or client gets 403 in one line, everyone does while the state
fails its checks. (b) a gateway started with ``--server`` fetches the state from the server
(``GET /v1/respond/state``), verifies it with a pinned key, refreshes it, and fails closed.

Each attack is also run the way team mode handled it before (no admission check at the server; a remote
gateway built without a response gate): the blocked caller got through.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import bastion.client
from bastion.client.gateway import attested_pull, introspect, response_state
from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import Ed25519Signer
from bastion.errors import AccessDenied
from bastion.hunt.report import Finding
from bastion.respond import Responder, parse_playbook, state_path
from bastion.respond.gate import RemoteResponseGate
from bastion.serve.remote import approve_remote_gateway, build_remote_gateway, server_token_checker
from bastion.serve.server import ServeOptions
from bastion.serve.tls import self_signed_certificate
from bastion.store.response_state import ResponseState, encode_signed
from bastion.vault import open_vault

PASS = "remote response gate passphrase"
OPTIONS = ServeOptions(model_ref="digits@prod", insecure=True)
BLOCK_IDENTITY = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-identity"]\n')
BLOCK_CLIENT = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\n')


@dataclass
class Team:
    home: Path
    url: str
    ca: str
    app: Any
    tokens: dict[str, str]
    attester: Ed25519PrivateKey


@pytest.fixture
def team(tmp_path: Path, digits: Any, kit: Any) -> Iterator[Team]:
    from bastion.server.app import create_server_app
    from bastion.vault import init_project

    home = tmp_path / "home"
    attester = Ed25519PrivateKey.generate()
    vault = init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast())
    try:
        vault.push(digits.directory, name="digits", env="prod")
        tokens = {
            name: vault.create_token(name=name, role=role, models=models)[1]
            for name, role, models in [
                ("gw-digits", "gateway", ["digits"]),
                ("alice", "consumer", ["digits"]),
                ("carol", "consumer", ["digits"]),
                ("erin", "data-scientist", []),
                ("ada", "admin", []),
            ]
        }
        pub = attester.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        approve_remote_gateway(vault=vault, options=OPTIONS, attester_public_pem=pub)
    finally:
        vault.close()
    cert, key = self_signed_certificate(tmp_path / "tls")
    app = create_server_app(home=home, passphrase=PASS)
    with kit.server_thread(app, ssl=(str(cert), str(key))) as server:
        yield Team(home, server.url, str(cert), app, tokens, attester)


def _respond(team: Team, book: Any, *, identity: str = "-", client: str = "-", key: str = "k1") -> None:
    finding = Finding("r1", "t", (), "high", identity, client, 0.0, 1.0, (), 1, key)
    with open_vault(home=team.home, passphrase=PASS) as owner:
        assert {r.status for r in Responder(vault=owner, playbook=book, mode="auto").respond([finding])} == {
            "done"
        }


def _get(team: Team, who: str, path: str = "/v1/registry/versions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {team.tokens[who]}"}
    return httpx.get(f"{team.url}{path}", headers=headers, verify=team.ca, timeout=30)


def _wait(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_the_server_refuses_a_blocked_identity_and_client(team: Team) -> None:
    assert _get(team, "erin").status_code == 200
    _respond(team, BLOCK_IDENTITY, identity="erin")
    assert _wait(lambda: _get(team, "erin").status_code == 403)
    refused = _get(team, "erin")
    assert "erin is blocked by bastion respond" in refused.json()["message"]
    assert _get(team, "ada").status_code == 200  # others are not affected
    # before the fix the server authenticated and acted: the same request reaches the vault as erin
    state = team.app.state.bastion
    erin = state.authenticate(f"Bearer {team.tokens['erin']}", address="127.0.0.1")
    assert erin.name == "erin" and state.vault_for(erin).list() == []  # no refusal on the old path
    # a blocked address (one that carried no authenticated traffic, or respond declines to block it): every
    # identity from it, the admin included (respond runs on the home, never through the server)
    _respond(team, BLOCK_CLIENT, client="203.0.113.9", key="k2")
    ada = state.authenticate(f"Bearer {team.tokens['ada']}", address="127.0.0.1")
    assert _wait(lambda: _refused(state, ada, "203.0.113.9"))
    assert not _refused(state, ada, "127.0.0.1")
    with pytest.raises(AccessDenied, match=r"client 203\.0\.113\.9 is blocked"):
        state.admitted(f"Bearer {team.tokens['ada']}", address="203.0.113.9")


def _refused(state: Any, identity: Any, address: str) -> bool:
    try:
        state.admit(identity, address=address)
    except AccessDenied:
        return True
    return False


def test_the_server_fails_closed_when_the_state_is_deleted(team: Team) -> None:
    _respond(team, BLOCK_IDENTITY, identity="erin")
    state_path(team.home).unlink()  # a home writer lifts the block the way issue 17 H2 tried
    assert _wait(lambda: _get(team, "ada").status_code == 403)
    assert "restore" in _get(team, "ada").json()["message"]
    assert _get(team, "gw-digits", "/v1/respond/state").status_code == 403
    with open_vault(home=team.home, passphrase=PASS) as owner:
        Responder(vault=owner, playbook=BLOCK_IDENTITY, mode="auto").restore_state()
    assert _wait(lambda: _get(team, "ada").status_code == 200)
    assert _get(team, "erin").status_code == 403


def test_only_gateways_and_admins_read_the_state(team: Team) -> None:
    assert _get(team, "erin", "/v1/respond/state").status_code == 403
    assert _get(team, "alice", "/v1/respond/state").status_code == 403
    answer = _get(team, "gw-digits", "/v1/respond/state").json()
    assert answer["serial"] == 0  # nothing responded yet: still a signed answer
    with open_vault(home=team.home, passphrase=PASS) as owner:
        line, data = base64.b64decode(answer["signed"]).split(b"\n", 1)
        owner.signer.verify(data, base64.b64decode(line))
        assert answer["public_key_pem"] == owner.signer.public_key_pem()


class _Source:
    def __init__(self, remote: Any) -> None:
        self.remote = remote

    def attested_pull(self, ref: str, *, out: Any, attest: Any) -> Any:
        return attested_pull(self.remote, ref, out=out, attest=attest)


def test_a_remote_gateway_applies_blocks_within_seconds(team: Team, kit: Any, digits: Any) -> None:
    remote = bastion.client.connect(team.url, token=team.tokens["gw-digits"], ca=team.ca)
    checker = server_token_checker(lambda token: introspect(remote, token))
    gate = RemoteResponseGate(lambda: response_state(remote), refresh_s=0.2).start()
    gated = build_remote_gateway(
        OPTIONS, source=_Source(remote), verify_token=checker, attester_key=team.attester, response_gate=gate
    )
    blind = build_remote_gateway(  # what `serve --server` built before: no response gate
        OPTIONS, source=_Source(remote), verify_token=checker, attester_key=team.attester
    )
    body = kit.infer_body(digits.x_test[:2])
    try:
        with kit.serving(gated) as g, kit.serving(blind) as b:

            def infer(srv: Any, who: str) -> int:
                url = f"{srv.url}/v2/models/digits/infer"
                return httpx.post(
                    url, json=body, headers=kit.bearer(team.tokens[who]), timeout=30
                ).status_code

            assert infer(g, "alice") == 200 and infer(b, "alice") == 200
            _respond(team, BLOCK_IDENTITY, identity="alice")
            assert _wait(lambda: infer(g, "alice") == 403)  # within a few refreshes (0.2 s each here)
            assert infer(g, "carol") == 200  # only the blocked identity
            assert infer(b, "alice") == 200  # the blind gateway lets the blocked identity through
    finally:
        gate.close()
        gated.close()
        blind.close()
        remote.close()


def _answer(state: ResponseState, signer: Any) -> dict[str, Any]:
    return {
        "signed": base64.b64encode(encode_signed(state, signer)).decode(),
        "public_key_pem": signer.public_key_pem(),
    }


def test_the_remote_gate_refuses_forged_rolled_back_and_stale_answers() -> None:
    home_key, other_key = Ed25519Signer.generate(), Ed25519Signer.generate()
    blocked = ResponseState(blocked_identities={"alice": {"finding": "k"}}, serial=3)
    answers: list[Any] = [_answer(blocked, home_key)]
    clock = [0.0]
    gate = RemoteResponseGate(lambda: answers[-1], refresh_s=60, max_age_s=10, now=lambda: clock[0])
    assert gate.refuses(identity="alice") and not gate.refuses(identity="carol")
    # the attacker between gateway and server (or a server without the key) answers "nothing is blocked":
    # 1. signed by another key: refused (the first answer's key is pinned)
    answers.append(_answer(ResponseState(serial=4), other_key))
    assert not gate.refresh() and gate.refuses(identity="carol")
    # 2. unsigned / garbage: refused
    answers.append({"signed": base64.b64encode(b"{}").decode(), "public_key_pem": home_key.public_key_pem()})
    assert not gate.refresh() and gate.refuses(identity="carol")
    # 3. an older state the home really signed (a replay): refused, the serial never goes back
    answers.append(_answer(ResponseState(serial=2), home_key))
    assert not gate.refresh() and gate.refuses(identity="carol")
    # what the signature alone would have accepted: the replayed state blocks nobody
    fresh = RemoteResponseGate(lambda: answers[-1], refresh_s=60)
    assert not fresh.refuses(identity="alice")
    # the genuine newer state is accepted again
    answers.append(_answer(ResponseState(blocked_identities={"alice": {}}, serial=5), home_key))
    assert gate.refresh() and not gate.refuses(identity="carol") and gate.refuses(identity="alice")
    # the server unreachable for longer than max_age_s: refused, not the last state kept forever
    answers.append(None)
    assert not gate.refresh()
    clock[0] = 11.0
    assert gate.refuses(identity="carol")


def test_a_pinned_key_refuses_the_first_answer_too() -> None:
    home_key, other_key = Ed25519Signer.generate(), Ed25519Signer.generate()
    gate = RemoteResponseGate(
        lambda: _answer(ResponseState(serial=9), other_key), public_key_pem=home_key.public_key_pem()
    )
    assert gate.state() is None and gate.refuses(identity="anyone")


def _server_entries(team: Team, action: str) -> list[Any]:
    return [e for e in team.app.state.bastion.base.audit.entries() if e.action == action]


def test_remote_gateway_records_reach_the_servers_log(team: Team, kit: Any, digits: Any) -> None:
    from bastion.client.gateway import RemoteAuditSink
    from bastion.events.collect import events_from_entry

    remote = bastion.client.connect(team.url, token=team.tokens["gw-digits"], ca=team.ca)
    sink = RemoteAuditSink(remote)
    entry = {"actor": "x", "action": "serve:requests", "target": "digits:1", "outcome": "ok", "details": {}}
    # a stolen gateway token alone (no attested release in this server yet) writes nothing
    with pytest.raises(AccessDenied, match="not released"):
        sink.append(**entry)
    checker = server_token_checker(lambda token: introspect(remote, token))
    blind = build_remote_gateway(  # before: request records went nowhere the hunt reads
        OPTIONS, source=_Source(remote), verify_token=checker, attester_key=team.attester
    )
    body = kit.infer_body(digits.x_test[:2])
    with kit.serving(blind) as b:
        url = f"{b.url}/v2/models/digits/infer"
        assert (
            httpx.post(url, json=body, headers=kit.bearer(team.tokens["alice"]), timeout=30).status_code
            == 200
        )
    blind.close()
    assert _server_entries(team, "serve:requests") == []
    gated = build_remote_gateway(
        OPTIONS, source=_Source(remote), verify_token=checker, attester_key=team.attester, audit=sink
    )
    with kit.serving(gated) as g:
        url = f"{g.url}/v2/models/digits/infer"
        for _ in range(3):
            assert (
                httpx.post(url, json=body, headers=kit.bearer(team.tokens["alice"]), timeout=30).status_code
                == 200
            )
        assert (
            httpx.post(url, json=body, headers=kit.bearer("bst_" + "0" * 16 + "." + "A" * 43)).status_code
            == 401
        )
    gated.close()  # flushes the last batch
    batches = _server_entries(team, "serve:requests")
    assert batches and {e.actor for e in batches} == {"gw-digits"}
    events = [ev for e in batches for ev in events_from_entry(e)]
    assert sum(ev.identity == "alice" and ev.outcome == "ok" for ev in events) == 3
    assert any(ev.kind == "auth-failure" for ev in events)  # the hunt's token-spray input
    # what a released gateway still may not write: other actions, other models
    with pytest.raises(AccessDenied, match="may not write"):
        sink.append(**{**entry, "action": "registry:promote"})
    with pytest.raises(AccessDenied, match="not released"):
        sink.append(**{**entry, "target": "fraud:1"})
    with (
        bastion.client.connect(team.url, token=team.tokens["alice"], ca=team.ca) as alice,
        pytest.raises(AccessDenied, match="not a gateway"),
    ):
        RemoteAuditSink(alice).append(**entry)
    remote.close()

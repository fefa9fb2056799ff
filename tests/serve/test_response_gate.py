"""The gateway obeys `bastion respond`: a token spray from one address is hunted, blocked and unblocked.

Real gateway (uvicorn on 127.0.0.1), real audit log, the hunt's rule pack and the packaged playbook.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from tests._support.response import lift_all

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.respond.gate import ResponseGate


@pytest.fixture
def own_project(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A project of its own (home, audit log, response state): what other tests' gateways logged into the
    session's audit log (refused tokens from other addresses) is not hunted here, whatever the test order."""
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "own-home"
    vault = init_project(home=home, passphrase="response gate " + tmp_path.name, kdf=KdfParams.unsafe_fast())
    _, alice = vault.create_token(name="alice", role="consumer", models=["digits"])
    yield SimpleNamespace(home=home, vault=vault, tokens={"alice": alice})
    vault.close()


def test_token_spray_is_hunted_and_the_address_blocked(kit, own_project, digits, tmp_path: Path) -> None:
    project = own_project
    gate = ResponseGate.for_vault(project.vault, reload_s=0.0)
    assert gate is not None
    gateway = kit.make_gateway(project, digits, response_gate=gate)
    body = kit.infer_body(digits.x_test[:1])
    try:
        with kit.serving(gateway) as server, httpx.Client(base_url=server.url) as client:
            assert (
                client.post(
                    "/v2/models/digits/infer", json=body, headers=kit.bearer(project.tokens["alice"])
                ).status_code
                == 200
            )
            for i in range(25):
                bad = kit.bearer("bst_" + f"{i:02d}" * 21 + "A")
                assert client.post("/v2/models/digits/infer", json=body, headers=bad).status_code == 401
            time.sleep(1.5)  # the audit writer flushes every second
            store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
            collect_audit(project.vault, store)
            sprays = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id.endswith("302")]
            assert [f.client for f in sprays] == ["127.0.0.1"]
            # loopback is never blocked automatically (issue 17 M4): an operator approves it here
            responder = Responder(
                vault=project.vault, playbook=load_playbook(), mode="auto", approve=lambda _: True
            )
            results = responder.respond(sprays)
            assert [(r.action, r.target, r.status) for r in results] == [
                ("block-client", "127.0.0.1", "done")
            ]
            refused = client.post(
                "/v2/models/digits/infer", json=body, headers=kit.bearer(project.tokens["alice"])
            )
            assert refused.status_code == 403 and "incident response" in refused.text
            Responder(vault=project.vault, playbook=load_playbook()).undo(
                action="block-client", target="127.0.0.1"
            )
            ok = client.post(
                "/v2/models/digits/infer", json=body, headers=kit.bearer(project.tokens["alice"])
            )
            assert ok.status_code == 200
    finally:
        lift_all(project.vault)
        gateway.close()


def test_a_tampered_state_refuses_everything(kit, project, digits, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"AAAA\n{}")
    gate = ResponseGate(path, project.vault.signer)
    assert gate.refuses(client="10.0.0.1") and gate.throttles("10.0.0.1")
    path.unlink()
    assert not ResponseGate(path, project.vault.signer).refuses(client="10.0.0.1")


def test_an_extraction_finding_quarantines_the_served_model(kit, project, digits, tmp_path: Path) -> None:
    from bastion.events import Event
    from bastion.respond import parse_playbook

    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(
        [
            Event(time=1.0e9 + i * 0.1, kind="request", identity="x", client="c", model="digits")
            for i in range(400)
        ]
    )
    bursts = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id.endswith("102")]
    assert [f.model for f in bursts] == ["digits"]
    book = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["quarantine-model"]\n')
    gateway = kit.make_gateway(
        project, digits, response_gate=ResponseGate.for_vault(project.vault, reload_s=0.0)
    )
    body = kit.infer_body(digits.x_test[:1])
    try:
        with kit.serving(gateway) as server, httpx.Client(base_url=server.url) as client:
            alice = kit.bearer(project.tokens["alice"])
            assert client.post("/v2/models/digits/infer", json=body, headers=alice).status_code == 200
            done = Responder(vault=project.vault, playbook=book, mode="auto").respond(bursts)
            assert [(r.action, r.target, r.status) for r in done] == [("quarantine-model", "digits", "done")]
            refused = client.post("/v2/models/digits/infer", json=body, headers=alice)
            assert refused.status_code == 503 and "quarantined" in refused.text
    finally:
        lift_all(project.vault)
        gateway.close()

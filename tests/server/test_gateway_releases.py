"""Issue 17 known limit 3: the versions the server released to a gateway survive a server restart, sealed.

Before, the set lived in memory: after a restart ``POST /v1/gateway/audit`` refused every gateway's request
records until the gateway attested again (shown below by removing the file, which is what a restart did).
Now each release is kept in ``HOME/gateway-releases.json`` with a seal only the passphrase holder can make;
an entry a home writer adds or edits is refused, never believed. The release itself is recorded through
``ServerState.mark_released``, the call the attested-release route makes after a release (the attested flow
end to end: tests/serve/test_remote_response_gate.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._support.server_thread import ServerThread

from bastion.crypto.kdf import KdfParams
from bastion.serve.tls import self_signed_certificate
from bastion.server.released import RELEASES_FILE
from bastion.vault import init_project

PASS = "gateway releases passphrase"
ENTRY = {"action": "serve:requests", "target": "digits:1", "outcome": "ok", "details": {}}


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    with init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast()) as vault:
        tokens = {n: vault.create_token(name=n, role="gateway", models=["digits"])[1] for n in ("gw", "gw2")}
    return home, tokens


@contextmanager
def _server(home: Path) -> Iterator[tuple[Any, str, str]]:
    """A real ``bastion server`` app over ``home`` (a fresh process state: a restart), over TLS."""
    from bastion.server.app import create_server_app

    cert, key = self_signed_certificate(home.parent / "tls")
    app = create_server_app(home=home, passphrase=PASS)
    try:
        with ServerThread(app, ssl=(cert, key)) as srv:
            yield app.state.bastion, srv.url, str(cert)
    finally:
        app.state.bastion.close()


def _write(url: str, ca: str, token: str, target: str = "digits:1") -> httpx.Response:
    body = {"entries": [{**ENTRY, "target": target}]}
    return httpx.post(
        f"{url}/v1/gateway/audit",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=ca,
        timeout=30,
    )


def test_releases_survive_a_restart_and_forged_entries_are_refused(home: tuple[Path, dict[str, str]]) -> None:
    path, tokens = home
    with _server(path) as (state, url, ca):
        assert _write(url, ca, tokens["gw"]).status_code == 403  # nothing released yet
        state.mark_released(state.authenticate(f"Bearer {tokens['gw']}"), "digits:1")
        assert _write(url, ca, tokens["gw"]).status_code == 200
    with _server(path) as (state, url, ca):  # restarted: still released, to that identity and version only
        assert _write(url, ca, tokens["gw"]).json() == {"written": 1}
        assert _write(url, ca, tokens["gw"], target="digits:2").status_code == 403
        refused = _write(url, ca, tokens["gw2"])
        assert refused.status_code == 403 and "was not released to gw2" in refused.json()["message"]
    releases = path / RELEASES_FILE
    # a home writer (no key ring) widens the set: another identity, another version, a made-up seal
    [entry] = json.loads(releases.read_bytes())
    with _server(path) as (state, url, ca):
        gw2 = state.authenticate(f"Bearer {tokens['gw2']}").id
    forged = [
        {**entry, "identity": gw2},  # gw's seal on gw2's entry
        {**entry, "ref": "digits:2"},  # gw's seal on another version
        {**entry, "identity": gw2, "ref": "digits:3", "mac": "00" * 32},
    ]
    releases.write_text(json.dumps([entry, *forged]))
    with _server(path) as (state, url, ca):
        assert _write(url, ca, tokens["gw"]).status_code == 200  # the genuine entry still holds
        assert _write(url, ca, tokens["gw2"]).status_code == 403
        assert _write(url, ca, tokens["gw"], target="digits:2").status_code == 403
        assert _write(url, ca, tokens["gw2"], target="digits:3").status_code == 403
    # what a restart did before (nothing kept): refused until the gateway attests again
    releases.unlink()
    with _server(path) as (state, url, ca):
        assert _write(url, ca, tokens["gw"]).status_code == 403

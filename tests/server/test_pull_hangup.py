"""Issue 17 H3 (gap): a client that hangs up mid-pull through ``bastion server`` leaves a
``registry:pull-end`` entry (incomplete, with the plaintext bytes sent) within a second or two, not when the
server stops: the server closes the pull stream when the client disconnects."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._support.pushed_vault import refuse_pickles
from tests._support.server_thread import ServerThread

from bastion.crypto.kdf import KdfParams
from bastion.server.app import create_server_app
from bastion.vault import init_project

PASS = "pull hang-up passphrase"
SIZE = 24 << 20  # well over what the socket buffers hold: the server is mid-stream when the client goes


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str, str]]:
    home = tmp_path / "home"
    vault = init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast(), inspectors=[refuse_pickles])
    try:
        src = tmp_path / "model"
        src.mkdir()
        (src / "weights.bin").write_bytes(os.urandom(SIZE))
        vault.push(src, name="big", kind="model")
        token = vault.create_token(name="ada", role="admin")[1]
    finally:
        vault.close()
    app = create_server_app(home=home, passphrase=PASS)
    with ServerThread(app) as server:
        yield app, server.url, token
    app.state.bastion.close()


def _pull_ends(app: Any) -> list[Any]:
    return [e for e in app.state.bastion.base.audit.entries() if e.action == "registry:pull-end"]


def test_a_hang_up_mid_pull_is_logged_at_once(served: tuple[Any, str, str]) -> None:
    app, url, token = served
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{url}/v1/registry/pull", params={"ref": "big:1"}, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        got = 0
        for chunk in resp.iter_raw(1 << 16):
            got += len(chunk)
            if got >= 2 << 20:
                break  # the client hangs up after 2 MiB
    deadline = time.monotonic() + 3.0
    while not _pull_ends(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    ends = _pull_ends(app)
    assert len(ends) == 1, "no registry:pull-end within 3 s of the hang-up"
    details = ends[0].details
    assert details["complete"] is False and ends[0].outcome == "error"
    assert 0 < details["plaintext_bytes"] < SIZE

"""Issue 17 known limit 2: a ``--server`` gateway pins the server's response-state key given on the command
line (``bastion serve --server URL --response-key PEM``, the key ``bastion log key`` prints on the server's
home) and refuses a state signed by any other key; pinning on first use (no key given) is logged as a
warning.

The attacker: another bastion server (or someone between the gateway and the server) that answers
``GET /v1/respond/state`` with a genuinely signed "nothing is blocked" under its own key. Without a pinned
key the gateway accepts it (trust on first use); with ``--response-key`` the gateway refuses to serve, in one
line (exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from tests._support.server_thread import ServerThread

import bastion.client
from bastion.client.gateway import response_state
from bastion.crypto.kdf import KdfParams
from bastion.errors import ConfigError
from bastion.respond.gate import RemoteResponseGate
from bastion.serve.tls import self_signed_certificate
from bastion.vault import init_project

PASS = "remote state pin passphrase"


@dataclass(frozen=True)
class Server:
    home: Path
    url: str
    ca: str
    token: str  # a gateway identity's workload token on this server


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """The genuine team server and another one (its own home, its own key), both real, over TLS."""
    from bastion.server.app import create_server_app

    made = []
    for name in ("genuine", "other"):
        home = tmp_path / name
        with init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast()) as vault:
            _, token = vault.create_token(name="gw", role="gateway", models=["digits"])
        cert, key = self_signed_certificate(tmp_path / f"tls-{name}")
        made.append((home, token, cert, key))
    with (
        ServerThread(create_server_app(home=made[0][0], passphrase=PASS), ssl=made[0][2:]) as a,
        ServerThread(create_server_app(home=made[1][0], passphrase=PASS), ssl=made[1][2:]) as b,
    ):
        yield (
            Server(made[0][0], a.url, str(made[0][2]), made[0][1]),
            Server(made[1][0], b.url, str(made[1][2]), made[1][1]),
        )


def _fetch(server: Server) -> tuple[object, object]:
    remote = bastion.client.connect(server.url, token=server.token, ca=server.ca)
    return remote, lambda: response_state(remote)


def _log_key(
    home: Path, out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """``bastion log key`` on the server's home (what its owner hands the gateway's operator)."""
    from bastion.cli import run

    monkeypatch.setenv("BASTION_PASSPHRASE", PASS)
    assert run(["log", "key", "--home", str(home)]) == 0
    out.write_text(capsys.readouterr().out)
    return out


def test_a_pinned_gateway_refuses_another_servers_state(
    servers: tuple[Server, Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bastion.cli import run

    genuine, other = servers
    pem = _log_key(genuine.home, tmp_path / "server-key.pem", monkeypatch, capsys)
    # the documented key is the one the genuine server signs with: a gateway pinned to it accepts its state
    remote, fetch = _fetch(genuine)
    with caplog.at_level(logging.WARNING, logger="bastion.respond.gate"):
        gate = RemoteResponseGate(fetch, public_key_pem=pem.read_bytes())  # type: ignore[arg-type]
    assert gate.state() is not None and gate.last_error == ""
    assert "pinned on first use" not in caplog.text  # a given key: nothing to warn about
    remote.close()  # type: ignore[attr-defined]
    # without the defence (trust on first use): the other server's state is accepted, with a warning
    remote, fetch = _fetch(other)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bastion.respond.gate"):
        tofu = RemoteResponseGate(fetch)  # type: ignore[arg-type]
    assert tofu.state() is not None
    assert (
        "response state key pinned on first use (sha256:" in caplog.text and "--response-key" in caplog.text
    )
    # with it: the same answer is refused, at the gate ...
    pinned = RemoteResponseGate(fetch, public_key_pem=pem.read_bytes())  # type: ignore[arg-type]
    assert pinned.state() is None and pinned.refuses(identity="anyone")
    assert "signed by another key than the pinned one (--response-key)" in pinned.last_error
    remote.close()  # type: ignore[attr-defined]
    # ... and by `bastion serve --server`: one line, exit 2, nothing served
    attester = tmp_path / "attester.pem"
    attester.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    token_file = tmp_path / "token"
    token_file.write_text(other.token)
    monkeypatch.delenv("BASTION_PASSPHRASE")
    args = ["serve", "digits@prod", "--server", other.url, "--ca", other.ca, "--insecure"]
    args += ["--attester-key", str(attester), "--token-file", str(token_file), "--response-key", str(pem)]
    capsys.readouterr()
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "did not send a response state that verifies" in err
    assert "signed by another key than the pinned one (--response-key)" in err
    assert "Traceback" not in err
    # the same through $BASTION_RESPONSE_KEY
    monkeypatch.setenv("BASTION_RESPONSE_KEY", str(pem))
    assert run(args[:-2]) == 2 and "another key than the pinned one" in capsys.readouterr().err


def test_a_response_key_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        RemoteResponseGate(
            lambda: {}, public_key_pem=b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )


def test_response_key_goes_with_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    monkeypatch.delenv("BASTION_URL", raising=False)
    key = tmp_path / "k.pem"
    key.write_text("x")
    assert run(["serve", "digits@prod", "--response-key", str(key), "--home", str(tmp_path / "h")]) == 2
    assert "--response-key go with --server" in capsys.readouterr().err

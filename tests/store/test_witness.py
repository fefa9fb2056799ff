"""Witnessed audit log (issue 11 item 5): heads kept outside the home make rollback by the home's holder show.

Each attack is run with and without the defence: without a witness the passphrase holder's rewrite of the log
verifies (the CLI then says UNWITNESSED); with a file witness on another path or a real HTTPS witness on
127.0.0.1 the same rewrite, truncation or deletion exits 1. The adaptive attacker knows the algorithm and
holds home + passphrase; what they can still do (append after the last witnessed head) is measured too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests._support.server_thread import ServerThread as _ServerThread

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import SigningKeys
from bastion.errors import IntegrityError
from bastion.store.auditlog import AuditLog
from bastion.store.db import open_engine
from bastion.store.witness import FileWitness
from bastion.vault import init_project, open_vault
from bastion.witness.app import create_app
from bastion.witness.service import WitnessService


class ServerThread(_ServerThread):
    def __init__(self, app: Any, *, ssl: tuple[Path, Path]) -> None:
        super().__init__(app, ssl=ssl, timeout_graceful_shutdown=2)


def _home(tmp_path: Path, witness_toml: str = "") -> Path:
    h = tmp_path / "home"
    v = init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    v.close()
    if witness_toml:
        with (h / "bastion.toml").open("a", encoding="utf-8") as f:
            f.write("\n" + witness_toml)
    return h


def _append(h: Path, n: int) -> None:
    with open_vault(home=h, inspectors=[]) as v:
        for i in range(n):
            v.audit.append(actor="owner", action="test", target=str(i), outcome="ok")


def _rewrite(h: Path, keep: int, forged: int) -> None:
    """The adaptive insider with home + passphrase: keep the first ``keep`` entries, re-sign a new history."""
    engine = open_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx >= :k"), {"k": keep})
        conn.execute(sa.text("DELETE FROM tree_heads WHERE size > :k"), {"k": keep})
    (h / "audit-head.json").unlink(missing_ok=True)
    signer = SigningKeys.open(h, os.environ["BASTION_PASSPHRASE"])
    log = AuditLog(engine, signer, witness_path=h / "audit-head.json")  # no witnesses: never tells them
    for i in range(forged):
        log.append(actor="owner", action="forged", target=str(i), outcome="ok")
    engine.dispose()


def _verify(h: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = run(["log", "verify", "--home", str(h)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_without_a_witness_a_rewrite_verifies_and_says_unwitnessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _home(tmp_path)
    _append(h, 5)
    _rewrite(h, keep=2, forged=3)
    code, out = _verify(h, capsys)
    assert code == 0 and "UNWITNESSED" in out and "OK" not in out  # the attack succeeds without the defence


@pytest.mark.parametrize(
    ("keep", "forged", "what"),
    [(3, 0, "truncation"), (0, 0, "deletion"), (2, 4, "rewrite"), (4, 2, "rewrite of the tail")],
)
def test_file_witness_catches_rollback_by_the_passphrase_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: int, forged: int, what: str
) -> None:
    spool = tmp_path / "elsewhere" / "heads.jsonl"
    h = _home(tmp_path, f'[[log.witness]]\nkind = "file"\npath = "{spool}"\n')
    _append(h, 5)
    code, out = _verify(h, capsys)
    assert code == 0 and "witness file:" in out and "6 entries seen" in out, out
    assert len(FileWitness(spool).heads()) == 5  # one head per append after the witness was configured
    _rewrite(h, keep=keep, forged=forged)
    code, out = _verify(h, capsys)
    assert code == 1, (what, out)
    assert "audit log" in out and "Traceback" not in out


def test_the_window_after_the_last_witnessed_head_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the insider can still do: append signed entries without telling the witness (never remove)."""
    spool = tmp_path / "elsewhere" / "heads.jsonl"
    h = _home(tmp_path, f'[[log.witness]]\nkind = "file"\npath = "{spool}"\n')
    _append(h, 2)
    _rewrite(h, keep=3, forged=2)  # keeps everything witnessed, appends 2 unannounced entries
    code, out = _verify(h, capsys)
    assert code == 0 and "2 newest entries are not witnessed yet" in out
    _append(h, 1)  # the next honest append brings the witness up to date (consistent extension)
    code, out = _verify(h, capsys)
    assert code == 0 and "not witnessed" not in out


def test_a_witness_inside_the_home_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = _home(tmp_path)
    with (h / "bastion.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[[log.witness]]\nkind = "file"\npath = "{h / "w.jsonl"}"\n')
    code, out = _verify(h, capsys)
    assert code == 2 and "inside the home" in out


@pytest.fixture
def http_witness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Path, ServerThread]]:
    """A real `bastion witness` over TLS on 127.0.0.1, pinned to the home's log key; yields (home, server)."""
    from bastion.serve.tls import self_signed_certificate

    h = _home(tmp_path)
    capsys.readouterr()
    assert run(["log", "key", "--home", str(h)]) == 0  # through the CLI, like an operator would
    log_key = tmp_path / "log.pub.pem"
    log_key.write_text(capsys.readouterr().out)
    wdir = tmp_path / "witness"
    assert run(["witness", "init", "--dir", str(wdir), "--log-key", str(log_key)]) == 0
    service = WitnessService.open(wdir)
    (tmp_path / "witness.pub.pem").write_text(service.public_key_pem())
    cert, key = self_signed_certificate(tmp_path / "tls")
    with ServerThread(create_app(service), ssl=(cert, key)) as server:
        with (h / "bastion.toml").open("a", encoding="utf-8") as f:
            f.write(
                f'\n[[log.witness]]\nkind = "http"\nurl = "{server.url}"\n'
                f'key = "{tmp_path / "witness.pub.pem"}"\nca = "{cert}"\n'
            )
        yield h, server


def test_http_witness_catches_rollback_and_refuses_a_forked_head(
    http_witness: tuple[Path, ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    h, _ = http_witness
    _append(h, 4)
    code, out = _verify(h, capsys)
    assert code == 0 and "5 entries seen" in out, out
    _rewrite(h, keep=2, forged=5)  # longer than before, re-signed, consistent-looking to a naive check
    code, out = _verify(h, capsys)
    assert code == 1 and "changed since witness" in out
    # the adaptive insider now tries to push the forged head to the witness: it refuses (not consistent)
    with (
        pytest.raises(IntegrityError, match=r"changed since witness|refused"),
        open_vault(home=h, inspectors=[]) as v,
    ):
        v.audit.append(actor="owner", action="forged", target="x", outcome="ok")
    code, out = _verify(h, capsys)
    assert code == 1


def test_http_witness_catches_truncation(
    http_witness: tuple[Path, ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    h, _ = http_witness
    _append(h, 3)
    _rewrite(h, keep=2, forged=0)
    code, out = _verify(h, capsys)
    assert code == 1 and "truncated" in out


def test_http_witness_with_a_wrong_pinned_key_is_refused(
    http_witness: tuple[Path, ServerThread], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bastion.crypto.signing import Ed25519Signer

    h, _ = http_witness
    _append(h, 1)
    (tmp_path / "witness.pub.pem").write_text(Ed25519Signer.generate().public_key_pem())
    code, out = _verify(h, capsys)
    assert code == 1 and "countersignature" in out


def test_unreachable_witness_is_an_error_not_an_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.crypto.signing import Ed25519Signer

    h = _home(tmp_path)
    (tmp_path / "w.pem").write_text(Ed25519Signer.generate().public_key_pem())
    with (h / "bastion.toml").open("a", encoding="utf-8") as f:
        f.write(
            f'\n[[log.witness]]\nkind = "http"\nurl = "https://127.0.0.1:9"\nkey = "{tmp_path / "w.pem"}"\n'
        )
    code, out = _verify(h, capsys)
    assert code == 2 and "unreachable" in out


def test_witness_service_checks(tmp_path: Path) -> None:
    """The service alone: pinned key, consistency from the held head, forks and older heads refused."""
    h = _home(tmp_path)
    signer = SigningKeys.open(h, os.environ["BASTION_PASSPHRASE"])
    service = WitnessService.init(tmp_path / "w", log_public_key_pem=signer.public_key_pem())
    engine = open_engine(f"sqlite:///{h / 'bastion.db'}")
    log = AuditLog(engine, signer)
    for i in range(3):
        log.append(actor="a", action="t", target=str(i), outcome="ok")
    h4 = log.tree_head()
    assert service.submit(h4).head.size == 4
    log.append(actor="a", action="t", target="x", outcome="ok")
    log.append(actor="a", action="t", target="y", outcome="ok")
    h6 = log.tree_head()
    with pytest.raises(IntegrityError, match="not consistent"):
        service.submit(h6, consistency=[])
    good = log.prove_consistency(4, 6)
    got = service.submit(h6, consistency=list(good.path))
    assert got.head.size == 6 and WitnessService.open(tmp_path / "w").latest() is not None
    with pytest.raises(IntegrityError, match="older"):
        service.submit(h4)
    forged = type(h6)(size=6, root_hash=bytes(32), timestamp=h6.timestamp, signature=h6.signature)
    with pytest.raises(IntegrityError, match="pinned log key"):
        service.submit(forged)
    other = SigningKeys.create(tmp_path / "other", "another passphrase!", kdf=KdfParams.unsafe_fast())
    alien = type(h6)(
        size=7, root_hash=bytes(32), timestamp="t", signature=other.sign(b"not the log's head encoding")
    )
    with pytest.raises(IntegrityError, match="pinned log key"):
        service.submit(alien)
    engine.dispose()


def test_witness_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.crypto.signing import Ed25519Signer

    pem = tmp_path / "log.pem"
    pem.write_text(Ed25519Signer.generate().public_key_pem())
    wdir = tmp_path / "w"
    assert run(["witness", "init", "--dir", str(wdir), "--log-key", str(pem)]) == 0
    printed = capsys.readouterr().out
    assert run(["witness", "key", "--dir", str(wdir)]) == 0
    assert capsys.readouterr().out == printed  # the countersigning key to pin in [[log.witness]] key
    assert run(["witness", "init", "--dir", str(wdir), "--log-key", str(pem)]) == 2  # never overwritten
    assert run(["witness", "serve", "--dir", str(wdir), "--host", "0.0.0.0", "--insecure"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert run(["witness", "serve", "--dir", str(tmp_path / "none")]) == 2
    assert "no witness" in capsys.readouterr().err
    (tmp_path / "bad.pem").write_text("not a key")
    assert (
        run(["witness", "init", "--dir", str(tmp_path / "w2"), "--log-key", str(tmp_path / "bad.pem")]) == 2
    )

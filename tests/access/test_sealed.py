"""Issue 11 item 4: a database writer without the key ring gets refusals (exit 1), never access.

Each edit listed in the issue is made directly in the database of a real home, then used through the CLI
entry point. With the seals in place every one is refused with an IntegrityError (exit 1) and nothing is
granted; the owner's documented migration step (``access seal --yes``) is what would bless the edited rows,
which shows the seal is the control that refuses them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.cli import run
from bastion.store.db import utcnow


def _sql(h: Path, statement: str, **params: object) -> None:
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert run(["token", "create", *args]) == 0
    return capsys.readouterr().out.strip()


def _as(monkeypatch: pytest.MonkeyPatch, token: str, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    monkeypatch.setenv("BASTION_TOKEN", token)
    capsys.readouterr()
    code = run(list(argv))
    monkeypatch.delenv("BASTION_TOKEN")
    err = capsys.readouterr().err
    return f"{code}:{err}"


def _minted(capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert run(["token", "list", "--format", "json"]) == 0
    return [t["identity"] for t in json.loads(capsys.readouterr().out)]


def test_inserted_owner_token_row_is_refused(home: Path, monkeypatch, capsys) -> None:
    secret = f"bst_{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    _sql(
        home,
        "INSERT INTO api_tokens (id, identity_id, salt, digest, created_at) VALUES (:i, 'owner', :s, :d, :t)",
        i=secret[4:20],
        s=salt,
        d=hmac.new(salt, secret.encode(), hashlib.sha256).digest(),
        t=utcnow(),
    )
    out = _as(monkeypatch, secret, capsys, "token", "create", "--name", "mallory", "--role", "admin")
    assert out.startswith("1:") and "seal does not match" in out
    assert "mallory" not in _minted(capsys)


def test_role_update_is_refused(home: Path, monkeypatch, capsys) -> None:
    tok = _token(capsys, "--name", "ana", "--role", "data-scientist")
    assert _as(monkeypatch, tok, capsys, "token", "create", "--name", "m", "--role", "admin").startswith("2:")
    _sql(home, "UPDATE identities SET role = 'admin' WHERE name = 'ana'")
    out = _as(monkeypatch, tok, capsys, "token", "create", "--name", "m", "--role", "admin")
    assert out.startswith("1:") and "'ana'" in out
    assert _as(monkeypatch, tok, capsys, "registry", "list").startswith("1:")  # refused for everything
    assert "m" not in _minted(capsys)


def test_grant_widening_is_refused(home: Path, monkeypatch, capsys) -> None:
    tok = _token(capsys, "--name", "gw", "--role", "consumer", "--model", "fraud")
    engine = sa.create_engine(f"sqlite:///{home / 'bastion.db'}")
    with engine.begin() as conn:
        ident = conn.execute(sa.text("SELECT id FROM identities WHERE name = 'gw'")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO grants (identity_id, scope, value, created_at) VALUES (:i, 'model', '*', :t)"
            ),
            {"i": ident, "t": utcnow()},
        )
    engine.dispose()
    out = _as(monkeypatch, tok, capsys, "registry", "show", "churn")
    assert out.startswith("1:") and "seal" in out
    # the owner's migration step is what would bless an edit: only after it does the wider grant count
    assert run(["access", "seal"]) == 1
    assert "gw" in capsys.readouterr().err
    assert run(["access", "seal", "--yes"]) == 0
    assert "sealed 1: gw" in capsys.readouterr().out
    assert _as(monkeypatch, tok, capsys, "registry", "show", "churn").startswith(
        "2:"
    )  # now only NotFound etc.


def test_reenabling_a_revoked_identity_and_token_is_refused(home: Path, monkeypatch, capsys) -> None:
    tok = _token(capsys, "--name", "ops", "--role", "deployer")
    assert run(["access", "revoke", "ops"]) == 0
    assert "invalid API token" in _as(monkeypatch, tok, capsys, "registry", "list")
    _sql(home, "UPDATE identities SET disabled_at = NULL WHERE name = 'ops'")
    _sql(home, "UPDATE api_tokens SET revoked_at = NULL")
    _sql(home, "UPDATE grants SET revoked_at = NULL")
    out = _as(monkeypatch, tok, capsys, "registry", "list")
    assert out.startswith("1:") and "'ops'" in out


def test_deleted_seal_is_refused_and_legit_changes_stay_sealed(home: Path, monkeypatch, capsys) -> None:
    tok = _token(capsys, "--name", "ana", "--role", "data-scientist")
    assert run(["access", "grant", "ana", "--model", "fraud"]) == 0  # a legit change reseals
    assert _as(monkeypatch, tok, capsys, "registry", "list").startswith("0:")
    assert run(["access", "seal"]) == 0
    _sql(home, "DELETE FROM sealed_state")
    out = _as(monkeypatch, tok, capsys, "registry", "list")
    assert out.startswith("1:") and "not sealed" in out


def test_replaying_a_sealed_state_to_undo_a_revocation_is_caught_by_log_verify(
    home: Path, monkeypatch, capsys
) -> None:
    """The adaptive DB writer keeps an old seal, then restores rows + seal after the token is revoked."""
    tok = _token(capsys, "--name", "ops", "--role", "deployer")
    engine = sa.create_engine(f"sqlite:///{home / 'bastion.db'}")
    with engine.connect() as conn:
        ident = conn.execute(sa.text("SELECT id FROM identities WHERE name = 'ops'")).scalar_one()
        old = conn.execute(sa.text("SELECT mac FROM sealed_state WHERE key = :i"), {"i": ident}).scalar_one()
    engine.dispose()
    capsys.readouterr()
    assert run(["token", "list", "--format", "json"]) == 0
    (tid,) = [t["id"] for t in json.loads(capsys.readouterr().out)]
    assert run(["token", "revoke", tid]) == 0
    _sql(home, "UPDATE api_tokens SET revoked_at = NULL")
    _sql(home, "UPDATE sealed_state SET mac = :m WHERE key = :i", m=old, i=ident)
    assert _as(monkeypatch, tok, capsys, "registry", "list").startswith("0:")  # the seal alone is fooled ...
    capsys.readouterr()
    assert run(["log", "verify"]) == 1  # ... the log is not
    assert "revocations in the audit log were undone" in capsys.readouterr().err

"""``bastion log verify|head|prove|consistency|show`` and a tampered log exiting 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import sqlalchemy as sa

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project


def test_log_commands_and_tampering(tmp_path: Path, monkeypatch, capsys) -> None:
    h = tmp_path / "home"
    v = init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    for i in range(4):
        v.audit.append(actor="owner", action="test", target=str(i), outcome="ok")
    v.close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    assert run(["log", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit log consistent: 5 entries" in out and "UNWITNESSED" in out
    assert run(["log", "head", "--format", "json"]) == 0
    head_text = capsys.readouterr().out
    assert json.loads(head_text)["size"] == 5
    (tmp_path / "head.json").write_text(head_text)
    assert run(["log", "prove", "3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == 3
    assert run(["log", "prove", "99"]) == 2
    assert run(["log", "consistency", "2", "5"]) == 0
    assert "consistent: 2 -> 5" in capsys.readouterr().out
    assert run(["log", "show", "--format", "json"]) == 0
    assert [e["action"] for e in json.loads(capsys.readouterr().out)][:2] == ["project:init", "test"]
    assert run(["log", "verify", "--trusted-head", str(tmp_path / "head.json")]) == 0
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx = 2"))
    engine.dispose()
    capsys.readouterr()
    assert run(["log", "verify"]) == 1
    assert "audit log" in capsys.readouterr().err


def _witnessed_home(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    from bastion.vault import open_vault

    h, wit = tmp_path / "home", tmp_path / "elsewhere" / "heads.jsonl"
    wit.parent.mkdir()
    init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    ).close()
    with (h / "bastion.toml").open("a") as fh:
        fh.write(f'\n[[log.witness]]\nkind = "file"\npath = "{wit}"\n')
    with open_vault(home=h, passphrase=os.environ["BASTION_PASSPHRASE"]) as v:
        for i in range(5):
            v.audit.append(actor="owner", action="test", target=str(i), outcome="ok")
    monkeypatch.setenv("BASTION_HOME", str(h))
    monkeypatch.delenv("BASTION_WITNESS", raising=False)
    return h, wit


def test_witness_named_from_outside_the_home_catches_truncation(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 11 F4: home + passphrase truncate the log and delete [[log.witness]] from bastion.toml."""
    h, wit = _witnessed_home(tmp_path, monkeypatch)
    assert run(["log", "verify", "--witness", str(wit), "--require-witness"]) == 0
    capsys.readouterr()
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:  # drop the last 3 entries and their heads; the head of the rest stays
        size = conn.execute(sa.text("SELECT max(idx) + 1 FROM audit_entries")).scalar_one()
        keep = size - 3
        conn.execute(sa.text("DELETE FROM audit_entries WHERE idx >= :k"), {"k": keep})
        conn.execute(sa.text("DELETE FROM tree_heads WHERE size > :k"), {"k": keep})
    engine.dispose()
    (h / "audit-head.json").unlink(missing_ok=True)
    toml = (h / "bastion.toml").read_text()
    (h / "bastion.toml").write_text(toml.split("[[log.witness]]")[0])  # the insider removes the witness
    assert run(["log", "verify"]) == 0  # what the home alone can say
    assert "UNWITNESSED" in capsys.readouterr().out
    assert run(["log", "verify", "--require-witness"]) == 1
    assert "no witness" in capsys.readouterr().err
    assert run(["log", "verify", "--witness", str(wit)]) == 1
    assert "witness" in capsys.readouterr().err
    monkeypatch.setenv("BASTION_WITNESS", str(wit))
    assert run(["log", "verify"]) == 1
    monkeypatch.setenv("BASTION_WITNESS", str(h / "inside.jsonl"))
    assert run(["log", "verify"]) == 2  # a witness file inside the home witnesses nothing
    assert "inside the home" in capsys.readouterr().err


def _owner_home(tmp_path: Path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    h = tmp_path / "home"
    init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    ).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    monkeypatch.delenv("BASTION_WITNESS", raising=False)
    return h


def _replay(h: Path, snapshot: dict[str, list[tuple]], where: dict[str, str]) -> None:  # type: ignore[type-arg]
    """What a database writer without the passphrase does: put back rows and their seal from a backup."""
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.begin() as conn:
        for table, rows in snapshot.items():
            conn.execute(sa.text(f"DELETE FROM {table} WHERE {where[table]}"))
            for row in rows:
                marks = ", ".join(f":c{i}" for i in range(len(row)))
                conn.execute(
                    sa.text(f"INSERT INTO {table} VALUES ({marks})"), {f"c{i}": v for i, v in enumerate(row)}
                )
    engine.dispose()


def _snapshot(h: Path, where: dict[str, str]) -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.connect() as conn:
        out = {
            t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} WHERE {w}"))]
            for t, w in where.items()
        }
    engine.dispose()
    return out


def test_replayed_grant_after_scope_revoke_fails_log_verify(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 11 F3a: grants + identity seal put back after `access revoke NAME --model GLOB`."""
    from bastion.vault import open_vault

    h = _owner_home(tmp_path, monkeypatch)
    with open_vault(home=h, passphrase=os.environ["BASTION_PASSPHRASE"]) as v:
        ident, _ = v.create_token(name="ds", role="data-scientist", models=["public*"])
        v.access.grant(name="ds", models=["secret*"])
    where = {"grants": f"identity_id = '{ident.id}'", "sealed_state": f"key = '{ident.id}'"}
    snap = _snapshot(h, where)
    assert snap["grants"] and snap["sealed_state"]
    assert run(["access", "revoke", "ds", "--model", "secret*"]) == 0
    assert run(["log", "verify"]) == 0
    _replay(h, snap, where)
    with open_vault(home=h, passphrase=os.environ["BASTION_PASSPHRASE"]) as v:
        assert "secret*" in v.access.identity("ds").models  # the seal alone accepts the replay
    capsys.readouterr()
    assert run(["log", "verify"]) == 1
    assert "ds model secret*" in capsys.readouterr().err


def test_replayed_budget_after_a_cut_fails_log_verify(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 11 F3b: an older, higher budget row + its seal put back after `privacy budget set` lowered it."""
    h = _owner_home(tmp_path, monkeypatch)
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "50"]) == 0
    capsys.readouterr()
    engine = sa.create_engine(f"sqlite:///{h / 'bastion.db'}")
    with engine.connect() as conn:
        (key,) = conn.execute(sa.text("SELECT dataset FROM privacy_budgets")).one()
    engine.dispose()
    where = {"privacy_budgets": f"dataset = '{key}'", "sealed_state": f"key = '{key}'"}
    snap = _snapshot(h, where)
    assert snap["privacy_budgets"] and snap["sealed_state"]
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "1"]) == 0
    assert run(["log", "verify"]) == 0
    _replay(h, snap, where)
    capsys.readouterr()
    assert run(["privacy", "budget", "show", "digits"]) == 0  # the seal alone accepts the replay
    assert run(["log", "verify"]) == 1
    assert "rollback" in capsys.readouterr().err

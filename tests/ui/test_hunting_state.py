"""Issue 17 re-attack F9: the dashboard's hunting page reads the response state as the gateway does, and its
hunt cache notices an in-place edit of the event store."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import sqlalchemy as sa
from tests._support.pushed_vault import vault

from bastion.events import EventStore, default_events_url
from bastion.events.schema import Event
from bastion.hunt.report import Finding
from bastion.respond import Responder, parse_playbook, state_path
from bastion.ui import hunting
from bastion.vault import Vault

__all__ = ["vault"]

BOOK = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\n')


def _block(vault: Vault, client: str, key: str) -> None:
    f = Finding("r1", "t", (), "high", "-", client, 0.0, 1.0, (), 1, key)
    assert [r.status for r in Responder(vault=vault, playbook=BOOK, mode="auto").respond([f])] == ["done"]


def test_a_rolled_back_state_file_is_not_shown_as_valid(vault: Vault, tmp_path: Path) -> None:
    _block(vault, "192.0.2.1", "k1")
    path = state_path(vault.settings.home)
    shutil.copy(path, tmp_path / "old.json")
    _block(vault, "192.0.2.2", "k2")
    shown = hunting._state(vault)
    assert shown["ok"] and shown["sections"]["blocked clients"] == ["192.0.2.1", "192.0.2.2"]
    shutil.copy(tmp_path / "old.json", path)  # the attacker: an older, genuinely signed file
    shown = hunting._state(vault)
    assert not shown["ok"] and "rolled back" in shown["message"]  # before: ok, one block "lifted"
    path.unlink()
    assert not hunting._state(vault)["ok"]


def test_hunt_cache_sees_an_in_place_update(vault: Vault) -> None:
    home = vault.settings.home
    url = default_events_url(home)
    with EventStore(url) as store:
        store.append(
            [
                Event(
                    time=time.time() - 30 + i * 0.1, kind="auth-failure", client="192.0.2.9", outcome="denied"
                )
                for i in range(30)
            ]
        )
    report, *_ = hunting._report(home, vault.log_head())
    assert any(f.client == "192.0.2.9" for f in report.findings)
    with EventStore(url) as store, store.engine.begin() as conn:  # same max id, same log head
        conn.execute(sa.text(f"UPDATE {store.table} SET client = '192.0.2.77'"))
    report, *_ = hunting._report(home, vault.log_head())
    assert any(f.client == "192.0.2.77" for f in report.findings)
    assert not any(f.client == "192.0.2.9" for f in report.findings)

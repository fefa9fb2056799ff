"""Issue 17 M5/L6: ``respond --watch`` with an approve-mode rule queues the action, not asking a terminal
it does not have (before the fix the first such finding ended the service: exit 2, "error: aborted"), a tick
that raises anything is logged and the watch goes on, and the actions taken are counted."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import AuthenticationFailed
from bastion.events import EventStore
from bastion.hunt import load_rules
from bastion.respond import Responder, parse_playbook, watch
from bastion.respond.pending import PendingQueue
from bastion.respond.state import STATE_DIR
from bastion.vault import Vault, open_vault

PASSPHRASE = "correct horse battery staple"
BULK = "0b7f3a10-5d1e-4c8a-9f00-000000000402"
BOOK = f'[[rule]]\nmatch = ["{BULK}"]\nactions = ["disable-identity"]\nmode = "approve"\n'


def _bulk_pull(vault: Vault, tmp_path: Path) -> str:
    _, token = vault.create_token(name="dave", role="data-scientist")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token) as dave:
        for i in range(6):
            dave.pull(f"m{i}", out=tmp_path / f"o{i}")
    return token


def test_watch_queues_approvals_and_an_operator_settles_them(vault: Vault, tmp_path: Path) -> None:
    token = _bulk_pull(vault, tmp_path)
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    responder = Responder(vault=vault, playbook=parse_playbook(BOOK), mode="auto", pending=queue)
    ticks: list[Any] = []
    taken = watch(
        responder=responder,
        store=store,
        rules=load_rules(),
        interval_s=0.0,
        max_ticks=1,
        on_tick=ticks.append,
    )
    assert taken == 0 and [(r.action, r.target, r.status) for r in ticks[0].results] == [
        ("disable-identity", "dave", "pending")
    ]
    [item] = queue.list()
    assert vault.authenticate(token).name == "dave"  # nothing done yet
    result = responder.settle_pending(item["id"], approve=True, events=store)
    assert result.status == "done"
    with pytest.raises(AuthenticationFailed):
        vault.authenticate(token)
    assert queue.list() == []
    store.close()


class _Flaky(Responder):
    """The real responder, whose first pass fails with an error no one anticipated."""

    calls = 0

    def respond(self, findings: Any, *, events: EventStore | None = None) -> list[Any]:
        type(self).calls += 1
        if type(self).calls == 1:
            raise RuntimeError("unexpected")
        return super().respond(findings, events=events)


def test_watch_survives_any_error_and_counts_actions(vault: Vault, tmp_path: Path) -> None:
    _bulk_pull(vault, tmp_path)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    book = parse_playbook(f'[[rule]]\nmatch = ["{BULK}"]\nactions = ["disable-identity"]\n')
    responder = _Flaky(vault=vault, playbook=book, mode="auto")
    ticks: list[Any] = []

    def on_tick(tick: Any) -> None:
        ticks.append(tick)
        if len(ticks) == 1:  # a new audit entry, so the next tick hunts again
            vault.show("m0")

    taken = watch(
        responder=responder, store=store, rules=load_rules(), interval_s=0.0, max_ticks=3, on_tick=on_tick
    )
    assert len(ticks) == 3 and ticks[0].results == ()
    assert taken == 1  # counted outside the exception handler (it was only counted inside)
    store.close()


def test_respond_watch_cli_without_a_terminal_keeps_running(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    _bulk_pull(vault, tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(vault.settings.home))
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    book = tmp_path / "book.toml"
    book.write_text(BOOK)
    timer = threading.Timer(4.0, lambda: os.kill(os.getpid(), signal.SIGINT))  # the operator stops it
    timer.start()
    try:
        code = run(["respond", "--watch", "--auto", "--playbook", str(book), "--interval", "0.2"])
    finally:
        timer.cancel()
    out = capsys.readouterr()
    assert code == 0, out
    assert "pending  disable-identity  dave" in out.out
    assert run(["respond", "--pending"]) == 0
    listed = capsys.readouterr().out
    assert "disable-identity  dave" in listed
    ident = listed.split()[0]
    assert run(["respond", "--decline-pending", ident]) == 0
    assert "declined" in capsys.readouterr().out
    assert run(["respond", "--pending"]) == 0 and "no pending proposals" in capsys.readouterr().out

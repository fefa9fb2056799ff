"""``bastion privacy budget set|show`` through a real ``bastion server`` over TLS: the server's sealed
ledger, as the caller's identity; a database edit on the server is refused on the client (exit 1)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # one server process; the CLI as a subprocess once, in-process otherwise

KEY = "sha256:" + "5e" * 32


def test_admin_sets_anyone_with_read_shows_a_writer_without_keys_gets_exit_1(
    server: Any, tmp_path: Path
) -> None:
    denied = server.cli("alice-ds", "privacy", "budget", "set", KEY, "--epsilon", "9")
    assert denied.returncode == 2 and "may not access:manage" in denied.stderr
    ok = server.run("ada-admin", "privacy", "budget", "set", KEY, "--epsilon", "2", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["epsilon_budget"] == 2.0
    shown = server.run("alice-ds", "privacy", "budget", "show", KEY, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    (status,) = (
        json.loads(shown.stdout) if shown.stdout.lstrip().startswith("[") else [json.loads(shown.stdout)]
    )
    assert status["dataset"] == KEY and status["epsilon_remaining"] == 2.0
    listed = server.run("ada-admin", "privacy", "budget", "show", "--format", "json")
    assert listed.returncode == 0 and KEY in listed.stdout

    # the same result as local mode on the server's home
    local = server.local("privacy", "budget", "show", KEY, "--format", "json")
    assert local.returncode == 0 and json.loads(local.stdout) == json.loads(shown.stdout)

    # an insider with write access to the server's database (no passphrase) raises the budget
    db = sqlite3.connect(server.home / "bastion.db")
    with db:
        db.execute("UPDATE privacy_budgets SET epsilon = 1000 WHERE dataset = ?", (KEY,))
    db.close()
    tampered = server.run("alice-ds", "privacy", "budget", "show", KEY)
    assert tampered.returncode == 1
    assert "privacy ledger" in tampered.stderr and "Traceback" not in tampered.stderr
    assert "1000" not in tampered.stdout


def test_a_builtin_name_resolves_to_its_digest_on_the_client(server: Any) -> None:
    from bastion.privacy.training import ledger_key

    ok = server.run("ada-admin", "privacy", "budget", "set", "wine", "--epsilon", "1.5", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    got = json.loads(ok.stdout)
    assert got["dataset"] == ledger_key("wine") and got["label"] == "wine"

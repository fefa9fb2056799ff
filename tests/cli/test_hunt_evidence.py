"""Issue 17 attack17c F9 (CLI): ``bastion hunt`` marks a finding whose events do not re-derive from the signed
audit log as refused instead of showing it as a plain finding (before: six forged events.db rows showed a
high "Reveal spike" by an innocent identity, with nothing to tell it from a real one)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("sigma")
from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project

SPRAYER = "203.0.113.9"
REVEAL_SPIKE = "Reveal spike (many reveals by one identity)"


def test_hunt_marks_forged_findings_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    vault = init_project(
        home=home, passphrase="pw-for-tests-only", kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    now = time.time()
    unauth = {
        "count": 30,
        "by_decision": {"deny:auth": 30},
        "sample": [{"identity": "-", "client": SPRAYER, "decision": "deny:auth", "status": 401, "ts": now}],
        "by_client": [{"client": SPRAYER, "decision": "deny:auth", "count": 30}],
    }
    vault.audit.append(
        actor="gateway",
        action="serve:requests",
        target="m:1",
        outcome="denied",
        details={"requests": [], "unauthenticated": unauth},
    )
    vault.close()
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.setenv("BASTION_PASSPHRASE", "pw-for-tests-only")
    assert run(["hunt", "--no-anomaly"]) == 1  # collects the log into events.db: the genuine spray
    db = sqlite3.connect(home / "events.db")
    for i in range(6):  # the insider (writes events.db, holds no key)
        db.execute(
            "INSERT INTO bastion_events (ts, kind, identity, client, model, action, outcome, status, source, "
            "severity, attacks, hour, weekday, audit_index, details, count) "
            "VALUES (?, 'reveal', 'alice', '-', 'customers', 'data:reveal', 'ok', 0, 'audit', 'info', '', "
            "0, 0, NULL, '{}', 1)",
            (now - 300 + i * 30,),
        )
    db.commit()
    db.close()
    capsys.readouterr()
    assert run(["hunt", "--no-anomaly", "--format", "json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    evidence = {(f["title"], f["identity"], f["client"]): f["evidence"] for f in findings}
    forged = [v for (title, who, _), v in evidence.items() if title == REVEAL_SPIKE and who == "alice"]
    # The collector now drops rows no audit entry produced before hunting (attack17d A6), so the forged spike
    # is not even a finding; a forged finding that got through would be marked refused, never verified (the
    # dashboard's side of that path: tests/ui/test_hunting_evidence.py).
    assert all(v.startswith("refused: ") for v in forged)
    assert any(v == "verified" for (_, _, client), v in evidence.items() if client == SPRAYER)
    db = sqlite3.connect(home / "events.db")
    assert db.execute("SELECT COUNT(*) FROM bastion_events WHERE audit_index IS NULL").fetchone()[0] == 0
    db.close()
    assert run(["hunt", "--no-anomaly"]) == 1
    table = capsys.readouterr().out
    assert not any(REVEAL_SPIKE in line and not line.startswith("REFUSED ") for line in table.splitlines())
    assert SPRAYER in table

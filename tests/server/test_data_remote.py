"""``bastion data protect|reveal`` through a real ``bastion server`` over TLS (issue 11 items 1–2): the scope
keys stay on the server; a data scientist can protect but not reveal; an admin's reveal round-trips.

The clients hold only BASTION_URL, a token and the CA (the ``server`` fixture)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # one server process; the CLI as a subprocess once, in-process otherwise

ROWS = [
    ("name", "email", "visits"),
    ("Alice Martin", "alice.martin@example.org", "3"),
    ("Bob Stone", "bob.stone@example.com", "5"),
    ("Carla Diaz", "carla.diaz@example.net", "7"),
    ("Dan Wu", "dan.wu@example.org", "1"),
]


def _csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(ROWS)
    return path


def _error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_data_scientist_protects_but_cannot_reveal_admin_round_trips(server: Any, tmp_path: Path) -> None:
    src = _csv(tmp_path / "people.csv")
    out = tmp_path / "people.protected.csv"
    r = server.cli("alice-ds", "data", "protect", str(src), "--out", str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["rows"] == 4 and result["output"] == str(out) and result["input"] == "people.csv"
    protected = out.read_text(encoding="utf-8")
    assert all(row[1] not in protected for row in ROWS[1:])  # the e-mail addresses are gone
    email_action = next(p["action"] for p in result["plan"] if p["column"] == "email")
    assert email_action in ("tokenize", "fpe")
    assert not list(tmp_path.glob(".*bastion-*"))  # no staging left behind

    # the data scientist may not reveal: refused before anything is uploaded, one line, nothing written
    back = tmp_path / "people.revealed.csv"
    denied = server.cli("alice-ds", "data", "reveal", "--file", str(out), "--out", str(back))
    assert denied.returncode == 2
    assert _error(denied) == "error: alice-ds (data-scientist) may not data:reveal"
    assert not back.exists()
    token = next(row[1] for row in csv.reader(protected.splitlines()[1:]))
    assert server.run("alice-ds", "data", "reveal", token).returncode == 2

    # an admin reveals: the file round-trips (every tokenized or FF1 column), and a single token too
    ok = server.run("ada-admin", "data", "reveal", "--file", str(out), "--out", str(back))
    assert ok.returncode == 0, ok.stderr
    revealed = list(csv.reader(back.read_text(encoding="utf-8").splitlines()))
    assert [row[1] for row in revealed] == [row[1] for row in ROWS]
    one = server.run("ada-admin", "data", "reveal", token, "--format", "json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["values"] == [ROWS[1][1]]


def test_same_answer_as_local_mode(server: Any, tmp_path: Path) -> None:
    """The JSON a remote protect prints has the same fields and plan as local mode on the server's home."""
    src = _csv(tmp_path / "same.csv")
    remote = server.run(
        "ada-admin", "data", "protect", str(src), "--out", str(tmp_path / "r.csv"), "--format", "json"
    )
    local = server.local("data", "protect", str(src), "--out", str(tmp_path / "l.csv"), "--format", "json")
    assert remote.returncode == local.returncode == 0, (remote.stderr, local.stderr)
    r, lo = json.loads(remote.stdout), json.loads(local.stdout)
    assert set(r) == set(lo) and r["plan"] == lo["plan"] and r["rows"] == lo["rows"]
    assert r["input_digest"] == lo["input_digest"]


def test_protect_and_push_the_protected_file(server: Any, tmp_path: Path) -> None:
    src = _csv(tmp_path / "visits.csv")
    r = server.run(
        "alice-ds",
        "data",
        "protect",
        str(src),
        "--out",
        str(tmp_path / "v.csv"),
        "--push",
        "visits-protected",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "pushed visits-protected:1"
    shown = server.run("alice-ds", "registry", "show", "visits-protected:1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["kind"] == "dataset"
    prod = server.run(
        "alice-ds",
        "data",
        "protect",
        str(src),
        "--out",
        str(tmp_path / "p.csv"),
        "--push",
        "x",
        "--env",
        "prod",
    )
    assert prod.returncode == 2 and "may not registry:push" in _error(prod)  # checked before protecting
    assert not (tmp_path / "p.csv").exists()


def test_refusals_are_one_line(server: Any, tmp_path: Path) -> None:
    missing = server.run(
        "alice-ds", "data", "protect", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")
    )
    assert missing.returncode == 2 and "no such file" in _error(missing)
    auditor = server.run(
        "aud-auditor", "data", "protect", str(_csv(tmp_path / "a.csv")), "--out", str(tmp_path / "o")
    )
    assert auditor.returncode == 2
    assert _error(auditor) == "error: aud-auditor (auditor) may not data:protect"
    scan = server.run("alice-ds", "data", "scan", str(tmp_path / "a.csv"))
    assert scan.returncode == 2  # not a remote command: refused rather than run against local keys

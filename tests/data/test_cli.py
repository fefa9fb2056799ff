"""``bastion data …`` and ``bastion lineage`` through the CLI entry point (and once as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.cli import EXIT_ERROR, EXIT_FINDING, EXIT_OK, run
from bastion.crypto.kdf import KdfParams
from bastion.data.synth import generate_table
from bastion.vault import init_project

PASSPHRASE = "correct horse battery staple"  # the value tests/conftest.py exports as BASTION_PASSPHRASE


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast()).close()
    return h


@pytest.fixture
def table():
    return generate_table(rows=80, seed=41)


def test_scan_without_a_project_prints_no_raw_values(tmp_path: Path, table, capsys) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    assert run(["data", "scan", str(raw), "--no-presidio", "--home", str(tmp_path / "none")]) == EXIT_OK
    text = capsys.readouterr().out
    assert "EMAIL_ADDRESS" in text and "not recorded" in text
    assert (
        run(["data", "scan", str(raw), "--no-presidio", "--format", "json", "--home", str(tmp_path / "x")])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["label"] == "secret" and doc["recorded"] is False
    for output in (text, json.dumps(doc)):
        assert not [v for v in table.pii_values if v in output]


def test_protect_push_lineage_reveal_and_risk(tmp_path: Path, home: Path, table, capsys) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    out = tmp_path / "prot.csv"
    policy = tmp_path / "policy.toml"
    policy.write_text('[options]\ntoken_scope = "crm"\nzip_digits = 1\nage_band = 50\n')
    code = run(
        [
            "data",
            "protect",
            str(raw),
            "--out",
            str(out),
            "--policy",
            str(policy),
            "--push",
            "customers",
            "--home",
            str(home),
            "--format",
            "json",
        ]
    )
    assert code == EXIT_OK, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    assert doc["pushed"] == {"name": "customers", "version": 1} and doc["token_scope"] == "crm"
    protected = out.read_text()
    assert not [v for v in table.pii_values if v in protected]

    assert run(["lineage", "customers", "--home", str(home)]) == EXIT_OK
    tree = capsys.readouterr().out
    assert "registry.push" in tree and "data.protect" in tree and "[raw source]" in tree
    assert run(["lineage", "customers:1", "--format", "openlineage", "--home", str(home)]) == EXIT_OK
    events = json.loads(capsys.readouterr().out)
    assert {e["job"]["name"] for e in events} == {"registry.push", "data.protect"}
    assert all(e["eventType"] == "COMPLETE" and e["run"]["runId"] for e in events)

    token = protected.splitlines()[1].split(",")[1]
    assert run(["data", "reveal", token, "--scope", "crm", "--home", str(home)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == table.rows[0][1]
    revealed = tmp_path / "revealed.csv"
    assert (
        run(
            [
                "data",
                "reveal",
                "--file",
                str(out),
                "--out",
                str(revealed),
                "--scope",
                "crm",
                "--home",
                str(home),
            ]
        )
        == EXIT_OK
    )
    assert table.rows[0][1] in revealed.read_text()

    assert run(["data", "risk", str(out), "--quasi-identifiers", "zip,age", "--k", "2"]) == EXIT_OK
    assert (
        run(["data", "risk", str(raw), "--quasi-identifiers", "zip,age,gender", "--k", "2"]) == EXIT_FINDING
    )
    assert "BELOW" in capsys.readouterr().out

    assert run(["data", "catalog", "--home", str(home), "--format", "json"]) == EXIT_OK
    entries = json.loads(capsys.readouterr().out)
    assert {e["column_name"] for e in entries} >= {"email", "notes"}


def test_errors_map_to_exit_codes(tmp_path: Path, home: Path, capsys) -> None:
    (bad := tmp_path / "bad.csv").write_text("a,b\n1,2,3\n")
    assert (
        run(["data", "protect", str(bad), "--out", str(tmp_path / "o.csv"), "--home", str(home)])
        == EXIT_ERROR
    )
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and not (tmp_path / "o.csv").exists()
    (pol := tmp_path / "p.toml").write_text("[defaults]\npii = 'shred'\n")
    assert run(["data", "scan", str(bad), "--policy", str(pol), "--no-presidio"]) == EXIT_ERROR
    assert run(["data", "reveal", "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "--home", str(home)]) == EXIT_ERROR
    assert run(["lineage", "nothing", "--home", str(home)]) == EXIT_ERROR
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_console_subprocess(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    env = {**os.environ, "BASTION_HOME": str(tmp_path / "nohome")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "data",
            "scan",
            str(raw),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "presidio-patterns" in doc["engines"]
    assert {c["name"]: c["label"] for c in doc["columns"]}["email"] == "pii"


def test_reveal_file_reveals_fpe_columns_or_says_which_it_did_not(
    tmp_path: Path, home: Path, table, capsys
) -> None:
    """Issue 14 item 3: reveal --file undoes tokens and the FF1 columns protect wrote; else exit 1."""
    raw = table.write_csv(tmp_path / "raw.csv")
    out = tmp_path / "prot.csv"
    (policy := tmp_path / "p.toml").write_text(
        '[options]\ntoken_scope = "crm"\n[columns.card_number]\naction = "fpe"\n'
    )
    args = ["data", "protect", str(raw), "--out", str(out), "--policy", str(policy), "--home", str(home)]
    assert run(args) == EXIT_OK
    capsys.readouterr()
    card = table.rows[0][5]
    assert card not in out.read_text()
    revealed = tmp_path / "revealed.csv"
    args = [
        "data",
        "reveal",
        "--file",
        str(out),
        "--scope",
        "crm",
        "--out",
        str(revealed),
        "--home",
        str(home),
    ]
    assert run([*args, "--format", "json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["fpe_columns"] == ["card_number"] and doc["not_revealed"] == []
    assert card in revealed.read_text() and table.rows[0][2] in revealed.read_text()
    # A file whose protect run is unknown (edited after protect): tokens revealed, FF1 not, exit 1 saying so.
    edited = tmp_path / "edited.csv"
    edited.write_text(out.read_text() + "\n")
    args = ["data", "reveal", "--file", str(edited), "--scope", "crm", "--out", str(tmp_path / "r2.csv")]
    assert run([*args, "--home", str(home)]) == EXIT_FINDING
    assert "not revealed" in capsys.readouterr().err


def test_catalog_resolves_relative_dataset_paths(
    tmp_path: Path, home: Path, table, capsys, monkeypatch
) -> None:
    """Issue 14 item 6: --dataset customers.csv (relative) finds the scanned file; unknown says so."""
    table.write_csv(tmp_path / "customers.csv")
    monkeypatch.chdir(tmp_path)
    assert run(["data", "scan", "customers.csv", "--no-presidio", "--home", str(home)]) == EXIT_OK
    capsys.readouterr()
    args = ["data", "catalog", "--dataset", "customers.csv", "--home", str(home), "--format", "json"]
    assert run(args) == EXIT_OK
    entries = json.loads(capsys.readouterr().out)
    assert entries and {e["column_name"] for e in entries} >= {"email"}
    assert run(["data", "catalog", "--dataset", "other.csv", "--home", str(home)]) == EXIT_ERROR
    assert "data scan other.csv" in capsys.readouterr().err

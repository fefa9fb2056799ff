"""``bastion registry …`` through the CLI entry point: output, --format json, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.cli import run


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(os.urandom(3000))
    (d / "config.json").write_text("{}")
    return d


def test_push_pull_list_show_verify_promote(home: Path, model: Path, tmp_path: Path, capsys) -> None:
    assert (
        run(["registry", "push", str(model), "--name", "fraud", "--tag", "team=risk", "--allow-unsafe"]) == 0
    )
    assert "pushed fraud:1" in capsys.readouterr().out
    assert run(["registry", "push", str(model), "--name", "fraud", "--allow-unsafe", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert run(["registry", "list", "--format", "json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [2, 1]
    assert run(["registry", "show", "fraud:1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tags"] == {"team": "risk"} and len(shown["files"]) == 2
    assert run(["registry", "show", "fraud:1"]) == 0
    assert "weights.bin" in capsys.readouterr().out
    assert run(["registry", "verify", "fraud:1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert run(["registry", "pull", "fraud:1", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
    capsys.readouterr()
    argv = ["registry", "push", str(model), "--name", "customers", "--kind", "dataset", "--allow-unsafe"]
    assert (
        run([*argv, "--classification", "confidential", "--metadata", '{"rows": 5}', "--format", "json"]) == 0
    )
    ds = json.loads(capsys.readouterr().out)
    assert (ds["kind"], ds["classification"], ds["metadata"]) == ("dataset", "confidential", {"rows": 5})
    assert run([*argv, "--metadata", "[1]"]) == 2
    assert run(["registry", "list", "--kind", "dataset", "--format", "json"]) == 0
    assert [v["name"] for v in json.loads(capsys.readouterr().out)] == ["customers"]
    assert run(["registry", "promote", "fraud:1", "--to", "prod"]) == 0
    assert run(["registry", "list"]) == 0
    assert "fraud:1\tmodel\tprod" in capsys.readouterr().out


def test_errors_print_one_line_with_the_right_exit_code(
    home: Path, model: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    assert run(["registry", "push", str(model), "--name", "fraud", "--allow-unsafe"]) == 0
    capsys.readouterr()
    cases = [
        (["registry", "show", "nope"], 2, "no artifact named"),
        (["registry", "show", "fraud:5"], 2, "no version 5"),
        (["registry", "pull", "fraud:x", "--out", str(tmp_path / "o")], 2, "bad version"),
        (
            ["registry", "push", str(model), "--name", "fraud", "--tag", "novalue", "--allow-unsafe"],
            2,
            "KEY=VALUE",
        ),
        (["registry", "promote", "fraud:1", "--to", "moon"], 2, "unknown environment"),
    ]
    for argv, code, text in cases:
        assert run(argv) == code, argv
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err, (argv, err)
        assert err.count("\n") <= 2
    # without --allow-unsafe the push is refused: by the scanner (exit 1) or, with no scanner, exit 2
    assert run(["registry", "push", str(model), "--name", "fraud"]) in (1, 2)
    assert "error:" in capsys.readouterr().err
    assert run(["registry", "show", "fraud:2"]) == 2
    monkeypatch.setenv("BASTION_PASSPHRASE", "wrong passphrase")
    assert run(["registry", "list"]) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "missing"))
    assert run(["registry", "list"]) == 2
    assert "no bastion project" in capsys.readouterr().err


def test_tampered_database_row_exits_1(home: Path, model: Path, tmp_path: Path, capsys) -> None:
    assert run(["registry", "push", str(model), "--name", "fraud", "--allow-unsafe"]) == 0
    engine = sa.create_engine(f"sqlite:///{home / 'bastion.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE artifact_files SET sha256 = :d WHERE path = 'weights.bin'"), {"d": "0" * 64}
        )
    engine.dispose()
    capsys.readouterr()
    assert run(["registry", "verify", "fraud:1"]) == 1
    assert run(["registry", "pull", "fraud:1", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "do not match the signed manifest" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# --- issue 12 item 9: each of these is one line on stderr and exit 2 ---------------------------------------


def _one_line_exit_2(argv: list[str], capsys) -> str:  # type: ignore[no-untyped-def]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len([line for line in err if not line.startswith(("hint:", "WARNING", "using unsafe_fast"))]) == 1
    ), err
    assert "Traceback" not in "\n".join(err) and "sqlalchemy" not in "\n".join(err).lower()
    return err[0]


@pytest.mark.parametrize("kind", ["symlink", "dangling", "proc"])
def test_pull_out_at_a_link_or_proc_is_one_line(
    home: Path, model: Path, tmp_path: Path, capsys, kind: str
) -> None:
    assert run(["registry", "push", str(model), "--name", "m", "--allow-unsafe"]) == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    if kind == "symlink":
        out.symlink_to(victim)
    elif kind == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    else:
        out = Path("/proc/self/x")
    capsys.readouterr()
    _one_line_exit_2(["registry", "pull", "m", "--out", str(out)], capsys)
    assert list(victim.iterdir()) == []


def test_deeply_nested_metadata_is_one_line(home: Path, model: Path, capsys) -> None:
    deep = "[" * 20000 + "]" * 20000
    line = _one_line_exit_2(
        ["registry", "push", str(model), "--name", "m", "--allow-unsafe", "--metadata", deep], capsys
    )
    assert "metadata" in line
    meta = '{"a": ' + "[" * 40 + "]" * 40 + "}"
    line = _one_line_exit_2(
        ["registry", "push", str(model), "--name", "m", "--allow-unsafe", "--metadata", meta], capsys
    )
    assert "nested" in line


def test_database_url_at_a_non_database_file_is_one_line(home: Path, tmp_path: Path, capsys) -> None:
    notdb = tmp_path / "notes.txt"
    notdb.write_text("this is not a database\n" * 100)
    cfg = home / "bastion.toml"
    cfg.write_text(cfg.read_text() + f'\n[database]\nurl = "sqlite:///{notdb}"\n')
    line = _one_line_exit_2(["status"], capsys)
    assert "not a bastion database" in line


@pytest.mark.parametrize("ref", ["m:١", "m:²", "m\n"])
def test_non_ascii_versions_and_names_are_exit_2(home: Path, model: Path, capsys, ref: str) -> None:
    assert run(["registry", "push", str(model), "--name", "m", "--allow-unsafe"]) == 0
    capsys.readouterr()
    line = _one_line_exit_2(["registry", "show", ref], capsys)
    assert "internal error" not in line

"""Fail closed (issue 21 item 3): every unreadable input, wrong key, oversized cell, missing scope or output
that would replace its input ends in one ``error:`` line, exit 2, no output file and the input unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.cli import EXIT_ERROR, EXIT_OK, run
from bastion.crypto.kdf import KdfParams
from bastion.data import protect as protect_module
from bastion.data.synth import generate_table
from bastion.vault import init_project

PASSPHRASE = "correct horse battery staple"  # tests/conftest.py exports it as BASTION_PASSPHRASE


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("fail-closed") / "home"
    init_project(home=h, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast()).close()
    return h


def _good(tmp_path: Path) -> Path:
    return generate_table(rows=30, seed=3).write_csv(tmp_path / "good.csv")


def _parquet(tmp_path: Path) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"email": [f"u{i}@example.org" for i in range(50)]}), tmp_path / "ok.parquet")
    return (tmp_path / "ok.parquet").read_bytes()


def _spliced(data: bytes, at: int, insert: bytes) -> bytes:
    return data[:at] + insert + data[at:]


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fails_closed(capsys, args: list[str], inp: Path | None, out: Path | None) -> str:
    before = _digest(inp) if inp is not None else None
    assert run(args) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    if out is not None:
        assert not out.exists(), "partial output"
        assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")], "temporary file left"
    if inp is not None:
        assert _digest(inp) == before, "input changed"
    return err


MALFORMED: dict[str, Callable[[Path], tuple[str, bytes]]] = {
    "unterminated quote": lambda t: ("in.csv", _good(t).read_bytes().replace(b"\n", b'\n"', 1)[:2000]),
    "short row": lambda t: ("in.csv", _good(t).read_bytes() + b"a,b\n"),
    "invalid utf-8": lambda t: ("in.csv", _spliced(_good(t).read_bytes(), 500, b"\xff\xfe")),
    "NUL byte": lambda t: ("in.csv", _spliced(_good(t).read_bytes(), 300, b"\x00")),
    "empty": lambda t: ("in.csv", b""),
    "oversized cell": lambda t: ("in.csv", b"a,b\n1," + b"x" * (1 << 21) + b"\n"),
    "oversized quoted cell": lambda t: ("in.csv", b'a,b\n1,"' + (b"y" * 1000 + b"\n") * 2100 + b'"\n'),
    "bad jsonl": lambda t: ("in.jsonl", b'{"a": 1}\n{"a": \n'),
    "jsonl array": lambda t: ("in.jsonl", b'{"a": 1}\n[1, 2]\n'),
    "truncated parquet": lambda t: ("in.parquet", _parquet(t)[: len(_parquet(t)) // 2]),
    "random parquet": lambda t: ("in.parquet", os.urandom(4096)),
    "bit-flipped parquet": lambda t: ("in.parquet", _flipped(_parquet(t), 100)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_protect_and_scan(case: str, tmp_path: Path, home: Path, capsys) -> None:
    name, data = MALFORMED[case](tmp_path)
    (inp := tmp_path / name).write_bytes(data)
    out = tmp_path / "out" / ("protected" + inp.suffix)
    out.parent.mkdir()
    _fails_closed(capsys, ["data", "protect", str(inp), "--out", str(out), "--home", str(home)], inp, out)
    _fails_closed(capsys, ["data", "scan", str(inp), "--no-presidio", "--home", str(home)], inp, None)


def test_outputs_never_replace_inputs_and_keys_must_open(
    tmp_path: Path, home: Path, capsys, monkeypatch
) -> None:
    good = _good(tmp_path)
    base = ["--home", str(home)]
    _fails_closed(capsys, ["data", "protect", str(good), "--out", str(good), *base], good, None)
    (link := tmp_path / "link.csv").symlink_to(good)
    _fails_closed(capsys, ["data", "protect", str(good), "--out", str(link), *base], good, None)
    os.link(good, hard := tmp_path / "hard.csv")
    _fails_closed(capsys, ["data", "protect", str(good), "--out", str(hard), *base], good, None)
    missing_dir = tmp_path / "nodir" / "o.csv"
    _fails_closed(capsys, ["data", "protect", str(good), "--out", str(missing_dir), *base], good, None)
    monkeypatch.setenv("BASTION_PASSPHRASE", "wrong")
    err = _fails_closed(
        capsys,
        ["data", "protect", str(good), "--out", str(tmp_path / "o.csv"), *base],
        good,
        tmp_path / "o.csv",
    )
    assert "wrong" not in err.replace("wrong passphrase", "")  # fmt: skip
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)

    (pol := tmp_path / "p.toml").write_text('[options]\ntoken_scope = "crm"\n')
    prot = tmp_path / "prot.csv"
    assert run(["data", "protect", str(good), "--out", str(prot), "--policy", str(pol), *base]) == EXIT_OK
    capsys.readouterr()
    token = next(c for c in prot.read_text().replace("\n", ",").split(",") if c.startswith("tok_"))
    # Reveal: the scope is required and must match; a tampered token or a wrong passphrase reveals nothing.
    _fails_closed(capsys, ["data", "reveal", token, *base], None, None)
    _fails_closed(capsys, ["data", "reveal", token, "--scope", "other", *base], None, None)
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    _fails_closed(capsys, ["data", "reveal", tampered, "--scope", "crm", *base], None, None)
    revealed = tmp_path / "revealed.csv"
    reveal_file = ["data", "reveal", "--file", str(prot), "--out", str(revealed), *base]
    _fails_closed(capsys, reveal_file, prot, revealed)
    _fails_closed(capsys, [*reveal_file, "--scope", "other"], prot, revealed)
    # The revealed file never replaces the protected one (it did before: exit 0, tokens gone).
    in_place = ["data", "reveal", "--file", str(prot), "--out", str(prot), "--scope", "crm", *base]
    _fails_closed(capsys, in_place, prot, None)
    (notes := tmp_path / "notes.txt").write_text(f"call {token}\n")
    in_place_text = ["data", "reveal", "--file", str(notes), "--out", str(notes), "--scope", "crm", *base]
    _fails_closed(capsys, in_place_text, notes, None)
    monkeypatch.setenv("BASTION_PASSPHRASE", "wrong")
    _fails_closed(capsys, ["data", "reveal", token, "--scope", "crm", *base], None, None)


def test_input_changed_while_protected_writes_nothing(
    tmp_path: Path, home: Path, capsys, monkeypatch
) -> None:
    good = _good(tmp_path)
    write_csv = protect_module._WRITERS["csv"]

    def edit_then_write(tmp, chunks, tr):  # the file changes between the scan and the protect pass
        with good.open("a", encoding="utf-8") as fh:
            fh.write(",".join(["x"] * len(good.read_text().splitlines()[0].split(","))) + "\n")
        return write_csv(tmp, chunks, tr)

    monkeypatch.setitem(protect_module._WRITERS, "csv", edit_then_write)
    out = tmp_path / "o.csv"
    assert run(["data", "protect", str(good), "--out", str(out), "--home", str(home)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "changed while it was being protected" in err and not out.exists()

"""Dataset scans on the local engine: whole-dataset classification, merge against per-file scans, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.compute import make_executor, scan_dataset
from bastion.compute.datasets import list_partitions
from bastion.compute.local import LocalExecutor
from bastion.data import scan_file
from bastion.errors import InvalidInput, NotFound

from .conftest import PARTS, ROWS


@pytest.fixture(scope="module")
def local2():
    with LocalExecutor(workers=2) as ex:
        yield ex


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_merge_matches_per_file_scans(datasets: dict[str, Path], local2: LocalExecutor, fmt: str) -> None:
    root = datasets[fmt]
    result = scan_dataset(path=root, executor=local2, use_presidio=False)
    report = result.report
    assert report.rows == PARTS * ROWS and len(result.partitions) == PARTS
    files = [root / p.relpath for p in result.partitions]
    per_file = [scan_file(path=f, use_presidio=False) for f in files]
    # Reference: entity counts and rows add up over the files scanned one by one.
    expected: Counter[str] = Counter()
    for r in per_file:
        expected.update(r.entity_counts())
    assert report.entity_counts() == dict(sorted(expected.items()))
    for col in report.columns:
        assert col.rows == PARTS * ROWS, col.name  # absent JSONL key counted as empty rows
    # Classification from the whole dataset: "contact" holds e-mails only in the last partition.
    contact = report.column("contact")
    assert contact.label.value == "pii" and contact.primary_entity == "EMAIL_ADDRESS"
    first = per_file[0].columns
    assert not any(c.name == "contact" and c.label.value == "pii" for c in first)
    # Positions are dataset rows: the first e-mail in "contact" is the last partition's first row.
    (ev,) = [e for e in contact.entities if e.entity == "EMAIL_ADDRESS"]
    assert ev.positions[0][0] == (PARTS - 1) * ROWS
    assert ev.count == ROWS


def test_workers_do_not_change_the_result(datasets: dict[str, Path], local2: LocalExecutor) -> None:
    root = datasets["parquet"]
    with LocalExecutor(workers=1) as one:
        a = scan_dataset(path=root, executor=one, use_presidio=False).to_dict()
    b = scan_dataset(path=root, executor=local2, use_presidio=False).to_dict()
    assert a == b
    assert b["digest"].startswith("sha256:") and [p["path"] for p in b["partitions"]] == [
        f"part={k}/data-{k}.parquet" for k in range(PARTS)
    ]


def test_partition_listing_errors(tmp_path: Path, datasets: dict[str, Path]) -> None:
    with pytest.raises(NotFound):
        list_partitions(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no CSV"):
        list_partitions(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.csv").write_text("x\n1\n")
    (mixed / "b.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(InvalidInput, match="mixes formats"):
        list_partitions(mixed)
    (mixed / "notes.txt").write_text("hello\n")
    with pytest.raises(InvalidInput, match="not CSV"):
        list_partitions(mixed)
    with pytest.raises(InvalidInput, match="unknown engine"):
        make_executor(engine="hadoop")
    with pytest.raises(InvalidInput, match="not implemented"):
        make_executor(engine="ray")
    with pytest.raises(InvalidInput, match="--cluster"):
        make_executor(engine="local", cluster="tcp://127.0.0.1:1")


def test_corrupt_partition_fails_the_job(tmp_path: Path, local2: LocalExecutor) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "a.csv").write_text("email\nx@example.com\n")
    (root / "b.csv").write_text('email\n"unterminated\n')
    with pytest.raises(InvalidInput, match=r"b\.csv"):
        scan_dataset(path=root, executor=local2, use_presidio=False)


def test_cli_scans_a_directory(datasets: dict[str, Path], local2: LocalExecutor, capsys) -> None:
    root = datasets["csv"]
    assert run(["data", "scan", str(root), "--no-presidio", "--workers", "2", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == PARTS * ROWS and len(out["partitions"]) == PARTS
    assert out == {
        **scan_dataset(path=root, executor=local2, use_presidio=False).to_dict(),
        "recorded": False,
    }
    assert run(["data", "scan", str(root), "--engine", "ray"]) == 2
    assert "not implemented" in capsys.readouterr().err
    assert run(["data", "scan", str(root / "nope")]) == 2

"""data protect and risk over partitioned datasets: same bytes on any engine, wrapped keys, resume, audit."""

from __future__ import annotations

import base64
import csv
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.compute import protect_dataset, risk_dataset
from bastion.compute.datasets import list_partitions
from bastion.compute.local import LocalExecutor, LocalJob
from bastion.crypto import WrappedKey
from bastion.crypto.kdf import KdfParams
from bastion.data import assess_risk, load_policy, protect_file
from bastion.data.catalog import data_keys, scope_keys
from bastion.data.io import iter_chunks
from bastion.errors import ConfigError, Conflict
from bastion.vault import Vault, init_project

from .conftest import write_dataset

PASSPHRASE = "correct horse battery staple"


def _inspect(path: Path) -> None:
    assert path.exists()


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    home = tmp_path_factory.mktemp("home") / "h"
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[_inspect])
    yield v
    v.close()


@pytest.fixture(scope="module")
def local1() -> Iterator[LocalExecutor]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_PASSPHRASE", PASSPHRASE)  # the workers' own environment
        with LocalExecutor(workers=1) as ex:
            yield ex


@pytest.fixture(scope="module")
def dask2() -> Iterator[Any]:
    pytest.importorskip("distributed")
    from bastion.compute.dask import DaskExecutor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_PASSPHRASE", PASSPHRASE)
        with DaskExecutor(workers=2) as ex:
            yield ex


def _files(root: Path) -> dict[str, bytes]:
    _, rels = list_partitions(root)
    return {rel: (root / rel).read_bytes() for rel in rels}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_dask_protect_is_byte_identical_to_local(
    datasets: dict[str, Path], vault: Vault, local1: LocalExecutor, dask2: Any, tmp_path: Path, fmt: str
) -> None:
    src = datasets[fmt]
    a = protect_dataset(vault, path=src, out=tmp_path / "a", executor=local1, use_presidio=False)
    b = protect_dataset(vault, path=src, out=tmp_path / "b", executor=dask2, use_presidio=False)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa == fb and len(fa) == 4  # same layout, same bytes
    assert a.output_digest == b.output_digest and a.rows == b.rows == 600
    assert a.plan == b.plan
    # The reference: protect_file in this process, partition by partition, with the dataset's classification.
    keys = scope_keys(vault.engine, vault.keys, scope="default", env=vault.settings.default_env)
    for rel, data in fa.items():
        ref = tmp_path / "ref" / rel
        ref.parent.mkdir(parents=True, exist_ok=True)
        protect_file(path=src / rel, out=ref, keys=keys, fmt=fmt, report=a.scan.report, use_presidio=False)
        assert ref.read_bytes() == data
    # "contact" holds e-mails only in the last partition: classified from the whole dataset, tokenized.
    actions = {p.name: p.action.value for p in a.plan}
    assert actions["contact"] == "tokenize" and actions["email"] == "tokenize"
    last = sorted(fa)[-1]
    (got,) = iter_chunks(tmp_path / "b" / last, fmt=fmt, chunk_rows=10_000, max_line_bytes=1 << 20)
    (raw,) = iter_chunks(src / last, fmt=fmt, chunk_rows=10_000, max_line_bytes=1 << 20)
    assert [keys.reveal(v) for v in got.data["contact"]] == raw.data["contact"]
    assert all("@" in v for v in raw.data["contact"])


class RecordingExecutor(LocalExecutor):
    """A real local pool that also keeps the pickled bytes of every task it sends."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.payloads: list[bytes] = []

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> LocalJob:
        self.payloads.extend(pickle.dumps(item) for item in items)
        return super().map(fn, items)


def test_tasks_carry_the_wrapped_key_never_the_raw_one(
    datasets: dict[str, Path], vault: Vault, tmp_path: Path
) -> None:
    os.environ["BASTION_PASSPHRASE"] = (
        PASSPHRASE  # set by the autouse fixture; the spawned workers inherit it
    )
    with RecordingExecutor(workers=1) as ex:
        protect_dataset(vault, path=datasets["csv"], out=tmp_path / "o", executor=ex, use_presidio=False)
    with vault.engine.connect() as conn:
        row = conn.execute(sa.select(data_keys.c.wrapped).where(data_keys.c.scope == "default")).one()
    wrapped = WrappedKey.from_json(row.wrapped)
    dek = vault.keys.unwrap(wrapped, context="bastion-data-key:default")
    protect_tasks = [p for p in ex.payloads if b"ProtectTask" in p]
    assert len(protect_tasks) == 4
    for blob in ex.payloads:
        for secret in (dek, base64.b64encode(dek), dek.hex().encode(), PASSPHRASE.encode()):
            assert secret not in blob
    for blob in protect_tasks:
        assert wrapped.to_json().encode() in blob


def test_a_worker_without_the_key_provider_refuses(
    datasets: dict[str, Path], vault: Vault, tmp_path: Path
) -> None:
    with LocalExecutor(workers=1) as ex, pytest.raises(ConfigError, match="job refused"):
        protect_dataset(
            vault,
            path=datasets["csv"],
            out=tmp_path / "o",
            executor=ex,
            use_presidio=False,
            passphrase_env="BASTION_TEST_UNSET_PASSPHRASE",
        )
    last = vault.audit.entries()[-1]
    assert (last.action, last.outcome) == ("data:protect", "error")
    assert not any((tmp_path / "o").rglob("*.csv"))


def test_interrupted_job_resumes_without_redoing_finished_partitions(
    datasets: dict[str, Path], vault: Vault, local1: LocalExecutor, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    first = protect_dataset(vault, path=datasets["csv"], out=out, executor=local1, use_presidio=False)
    before = _files(out)
    rels = sorted(before)
    # As if the job had died after two partitions: the last two outputs and markers are gone / stale.
    (out / rels[2]).unlink()
    (out / rels[3]).write_bytes(b"half-written")
    stamps = {rel: (out / rel).stat().st_mtime_ns for rel in rels[:2]}
    n_audit = len(vault.audit.entries())
    again = protect_dataset(vault, path=datasets["csv"], out=out, executor=local1, use_presidio=False)
    assert [p.resumed for p in again.partitions] == [True, True, False, False]
    assert _files(out) == before and again.output_digest == first.output_digest
    assert {rel: (out / rel).stat().st_mtime_ns for rel in rels[:2]} == stamps  # not rewritten
    entries = vault.audit.entries()
    assert len(entries) == n_audit + 1  # one audit entry per job
    assert entries[-1].details["engine"] == "local" and entries[-1].details["resumed"] == 2
    # Another job (another policy) into the same directory is refused.
    other = tmp_path / "p.toml"
    other.write_text('[defaults]\npii = "redact"\n', encoding="utf-8")
    with pytest.raises(Conflict):
        protect_dataset(
            vault,
            path=datasets["csv"],
            out=out,
            executor=local1,
            policy=load_policy(other),
            use_presidio=False,
        )


def _split_classes(root: Path) -> Path:
    """Classes split across partitions: per-partition k (1) is smaller than the dataset's k (2)."""
    root.mkdir()
    rows = [("75001", "30", "flu"), ("75001", "30", "cold"), ("75002", "40", "flu"), ("75002", "40", "flu")]
    for k, part in enumerate((rows[0::2], rows[1::2], [("75003", "50", "x")] * 3)):
        with (root / f"p{k}.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["zip", "age", "diagnosis"])
            w.writerows(part)
    return root


@pytest.mark.parametrize("data", ["split", "synth"])
def test_risk_is_exact_across_partitions(
    datasets: dict[str, Path], local1: LocalExecutor, dask2: Any, tmp_path: Path, data: str
) -> None:
    root = _split_classes(tmp_path / "split") if data == "split" else datasets["csv"]
    qis = ["zip", "age"] if data == "split" else ["zip", "gender"]
    # The reference: the single-file assessment over the concatenated partitions.
    whole = tmp_path / "whole.csv"
    _, rels = list_partitions(root)
    lines = [(root / rel).read_text(encoding="utf-8").splitlines(keepends=True) for rel in rels]
    whole.write_text(lines[0][0] + "".join(x for part in lines for x in part[1:]), encoding="utf-8")
    ref = assess_risk(
        path=whole, quasi_identifiers=qis, sensitive="diagnosis" if data == "split" else None, k=2
    )
    for ex in (local1, dask2):
        got = risk_dataset(
            path=root, quasi_identifiers=qis, sensitive=ref.sensitive, k=2, executor=ex
        ).to_dict()
        assert {**got, "path": ""} == {**ref.to_dict(), "path": ""}
    if data == "split":
        assert ref.k == 2 and ref.l_diversity == 1 and ref.passes
        per_part = [assess_risk(path=root / rel, quasi_identifiers=qis, k=2).k for rel in rels]
        assert min(per_part) == 1  # what a per-partition k would have (wrongly) reported


@pytest.mark.slow
def test_cli_protect_and_risk_a_directory(
    datasets: dict[str, Path], vault: Vault, dask2: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from bastion.cli import run

    home = str(vault.settings.home)
    address = dask2.client.scheduler_info(n_workers=-1)["address"]
    src = datasets["jsonl"]
    argv = ["data", "protect", str(src), "--out", str(tmp_path / "o"), "--home", home, "--format", "json"]
    assert run([*argv, "--engine", "dask", "--cluster", address]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "dask" and out["rows"] == 600 and len(out["partitions"]) == 4
    assert run([*argv, "--push", "x"]) == 2
    assert "--push" in capsys.readouterr().err
    split = _split_classes(tmp_path / "split")
    risk = ["data", "risk", str(split), "--quasi-identifiers", "zip,age", "--format", "json"]
    assert run([*risk, "--k", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 2
    assert run([*risk, "--k", "3", "--engine", "dask", "--cluster", address]) == 1
    assert json.loads(capsys.readouterr().out)["classes_below_k"] == 2


@pytest.mark.slow
def test_a_worker_killed_mid_protect_changes_nothing(
    vault: Vault, local1: LocalExecutor, dask2: Any, tmp_path: Path
) -> None:
    import signal
    import threading
    import time

    root = write_dataset(tmp_path / "ds", "csv")
    for f in root.rglob("*.csv"):  # long enough partitions to be killed mid-task
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        f.write_text(lines[0] + "".join(lines[1:] * 15), encoding="utf-8")
    ref = protect_dataset(vault, path=root, out=tmp_path / "ref", executor=local1, use_presidio=False)
    client = dask2.client
    pids = client.run(os.getpid)
    box: dict[str, Any] = {}

    def job() -> None:
        try:
            box["result"] = protect_dataset(
                vault, path=root, out=tmp_path / "o", executor=dask2, use_presidio=False
            )
        except BaseException as exc:  # reported by the assertion below
            box["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        for addr, keys in client.processing().items():
            if any(str(k).startswith("protect_partition") for k in keys):
                victim = addr
                break
        time.sleep(0.02)
    assert victim is not None, "no protect task was ever processing"
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(180)
    assert "error" not in box, box.get("error")
    assert _files(tmp_path / "o") == _files(tmp_path / "ref")
    assert box["result"].output_digest == ref.output_digest
    client.wait_for_workers(2, timeout=60)


def test_cli_dataset_scan_in_a_project_is_catalogued_and_audited(
    datasets: dict[str, Path], vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from bastion.cli import run
    from bastion.data.catalog import catalog_entries

    root = datasets["jsonl"]
    n_audit = len(vault.audit.entries())
    argv = ["data", "scan", str(root), "--no-presidio", "--workers", "1", "--format", "json"]
    assert run([*argv, "--home", str(vault.settings.home)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] is True
    entries = vault.audit.entries()
    assert len(entries) == n_audit + 1
    assert (entries[-1].action, entries[-1].outcome, entries[-1].details["engine"]) == (
        "data:scan",
        "ok",
        "local",
    )
    cols = {e["column_name"]: e for e in catalog_entries(vault.engine, dataset=out["path"])}
    assert cols["contact"]["label"] == "pii"

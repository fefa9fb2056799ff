"""Issue 18 item 4: ``bastion audit --models GLOB`` — one audit per registry version on an executor.

Three tiny registry versions (two 8-feature MLPs and one version holding no loadable model), the quick budget
and the evasion family only. The same reports (all but the per-family ``seconds``) come out of the local pool
with 1 and 2 workers and of a 2-worker Dask ``LocalCluster`` on 127.0.0.1; the failing version is reported
while the others finish; the driver writes the attested annotations and one audit-log entry for the job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bastion.adversarial.loading import load_data
from bastion.cli import run
from bastion.compute.audits import (
    AuditSettings,
    AuditTask,
    TaskResult,
    audit_models,
    audit_version,
    match_versions,
)
from bastion.compute.local import LocalExecutor
from bastion.crypto.kdf import KdfParams
from bastion.governance.evidence import audit_attested
from bastion.vault import Vault, init_project, open_vault

GOOD = ("tiny-a:1", "tiny-b:1")
BROKEN = "tiny-c:1"
SETTINGS = AuditSettings(attacks=("evasion",), budget="quick", seed=3)
NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


@dataclass
class Registry:
    home: Path
    vault: Vault
    data: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    from bastion.models.recipes import MlpConfig, build_mlp, save_model

    root = tmp_path_factory.mktemp("audits")
    passphrase = "correct horse battery staple"  # tests/conftest.py TEST_PASSPHRASE
    init_project(home=root / "home", passphrase=passphrase, kdf=KdfParams.unsafe_fast()).close()
    vault = open_vault(home=root / "home", passphrase=passphrase)
    cfg = MlpConfig(n_features=8, n_classes=3, hidden=(8,))
    for k, name in enumerate(("tiny-a", "tiny-b")):
        module = build_mlp(n_features=8, n_classes=3, hidden=(8,), seed=k)
        vault.push(save_model(module, root / name, config=cfg), name=name)
    broken = root / "tiny-c"
    broken.mkdir()
    (broken / "notes.txt").write_text("no model in here\n")
    vault.push(broken, name="tiny-c")
    rng = np.random.default_rng(0)
    x = rng.random((60, 8), dtype=np.float32)
    np.savez(root / "rows.npz", x=x, y=(x[:, 0] * 3).astype(np.int64).clip(0, 2))
    yield Registry(root / "home", vault, root / "rows.npz")
    vault.close()


def _comparable(run: Any) -> dict[str, Any]:
    out = {}
    for v in run.versions:
        doc = None if v.report is None else v.report.to_dict()
        for sec in (doc or {}).get("sections", {}).values():
            sec.pop("seconds")
        out[v.ref] = {"manifest": v.manifest_digest, "report": doc, "error": v.error}
    return out


def test_the_glob_matches_names_or_name_version() -> None:
    vs = [
        SimpleNamespace(name=n, version=v) for n, v in [("digits", 2), ("digits", 1), ("fraud", 3), ("dx", 3)]
    ]

    def refs(pattern: str) -> list[str]:
        return [f"{v.name}:{v.version}" for v in match_versions(vs, pattern)]

    assert refs("digits*") == ["digits:1", "digits:2"]  # names only: every version, sorted
    assert refs("digits:*") == ["digits:1", "digits:2"]
    assert refs("*:3") == ["dx:3", "fraud:3"]
    assert refs("d*:1") == ["digits:1"]
    assert refs("digit") == []


def test_a_worker_refuses_bytes_that_are_not_the_ones_bound(registry: Registry) -> None:
    ds = load_data(registry.data)
    task = AuditTask(
        "tiny-a", 1, "sha256:x", (("config.json", b"{}"),), "0" * 64, ds, SETTINGS, NOW.isoformat()
    )
    result = audit_version(task)
    assert isinstance(result, TaskResult) and result.report is None
    assert result.error is not None and result.error.startswith("IntegrityError")


@pytest.mark.slow  # three executors (two spawn pools, one Dask LocalCluster) and 9 audits: ~25 s here
def test_same_reports_on_every_engine_and_worker_count(registry: Registry) -> None:
    from bastion.compute.dask import DaskExecutor

    ds = load_data(registry.data)
    runs = {}
    for label, make in (
        ("local-1", lambda: LocalExecutor(workers=1)),
        ("local-2", lambda: LocalExecutor(workers=2)),
        ("dask-2", lambda: DaskExecutor(workers=2)),
    ):
        with make() as ex:
            runs[label] = audit_models(
                vault=registry.vault,
                models="tiny-*",
                data=ds,
                executor=ex,
                settings=SETTINGS,
                now=lambda: NOW,
            )
    first = _comparable(runs["local-1"])
    assert [*first] == [*GOOD, BROKEN]
    assert all(first[r]["report"] is not None and first[r]["error"] is None for r in GOOD)
    assert first[BROKEN]["report"] is None and "no single model file" in first[BROKEN]["error"]
    assert _comparable(runs["local-2"]) == first
    assert _comparable(runs["dask-2"]) == first
    assert runs["dask-2"].engine == "dask" and len(runs["dask-2"].failed) == 1


@pytest.mark.slow  # a JVM (local[2] master) starts: ~20 s
def test_spark_gives_the_same_reports(registry: Registry) -> None:
    pytest.importorskip("pyspark")
    from bastion.compute import make_executor

    ds = load_data(registry.data)
    runs = []
    for engine in ("local", "spark"):
        with make_executor(engine=engine, workers=2) as ex:
            runs.append(
                audit_models(
                    vault=registry.vault,
                    models="tiny-*",
                    data=ds,
                    executor=ex,
                    settings=SETTINGS,
                    now=lambda: NOW,
                )
            )
    assert runs[1].engine == "spark" and _comparable(runs[1]) == _comparable(runs[0])
    assert [v.ok for v in runs[1].versions] == [True, True, False]


def test_cli_audits_every_version_records_attested_notes_and_one_log_entry(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    args = ["audit", "--models", "tiny-*", "--data", str(registry.data), "--out", str(out), "--home"]
    args += [str(registry.home), "--attacks", "evasion", "--budget", "quick", "--workers", "1"]
    before = len(registry.vault.log_entries())
    code = run([*args, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2  # tiny-c holds no model: that version failed, so the job says so
    doc = json.loads(captured.out)
    rows = {r["ref"]: r for r in doc["versions"]}
    assert [*rows] == [*GOOD, BROKEN] and doc["failed"] == 1 and doc["engine"] == "local"
    assert "tiny-c:1" in captured.err and "not audited" in captured.err
    assert rows[BROKEN]["error"] and rows[BROKEN]["grade"] is None
    with open_vault(home=registry.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as vault:
        for ref in GOOD:
            name, version = ref.split(":")
            report = out / f"{name}-{version}" / "report.json"
            assert report.is_file() and (report.parent / "report.html").is_file()
            assert json.loads(report.read_text())["model"]["registry_ref"] == ref
            (note,) = vault.annotations(ref, namespace="audit")[-1:]
            assert audit_attested(vault, ref, note.data) and note.data["grade"] == rows[ref]["grade"]
            assert not audit_attested(vault, GOOD[1] if ref == GOOD[0] else GOOD[0], note.data)
        assert not vault.annotations(BROKEN, namespace="audit")
        assert not (out / "tiny-c-1").exists()
        jobs = [e for e in vault.log_entries()[before:] if e.action == "audit:run"]
    (job,) = jobs
    assert job.target == "tiny-*" and job.outcome == "error"
    assert job.details["engine"] == "local" and job.details["workers"] == 1
    assert job.details["versions"] == {
        "tiny-a:1": rows["tiny-a:1"]["grade"],
        "tiny-b:1": rows["tiny-b:1"]["grade"],
        BROKEN: "failed",
    }


def test_cli_on_dask_with_a_policy_violation_exits_1(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = tmp_path / "gate.toml"
    gate.write_text("[evasion]\nrobust_accuracy = { min = 0.99 }\n")  # an untrained 8-feature MLP: far below
    args = ["audit", "--models", "tiny-a:*", "--data", str(registry.data), "--out", str(tmp_path / "r")]
    args += ["--home", str(registry.home), "--attacks", "evasion", "--engine", "dask", "--workers", "1"]
    assert run([*args, "--policy", str(gate), "--format", "json"]) == 1
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)["versions"]
    assert row["ref"] == "tiny-a:1" and "evasion.robust_accuracy" in row["violations"][0]
    assert "policy violation" in captured.err and "tiny-a:1" in captured.err
    assert (tmp_path / "r" / "tiny-a-1" / "report.json").is_file()  # written even when the gate fails


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "tiny-*", "--model", "tiny-a:1"], "give one of --demo, --model or --models"),
        (["--models", "tiny-*", "--demo"], "give one of --demo, --model or --models"),
        (["--models", "nothing-*"], "no model version matches 'nothing-*'"),
        (["--models", "tiny-*", "--weights", "w.safetensors"], "--models does not take --weights"),
        (["--demo", "--engine", "dask"], "--engine, --cluster and --workers apply to --models"),
        (["--models", "tiny-*", "--engine", "ray"], "ray engine is not implemented"),
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["audit", "--data", str(registry.data), "--out", str(tmp_path), "--home", str(registry.home)]
    assert run([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_result_for_another_version_is_not_recorded(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bastion.compute.audits as audits

    real = audits.audit_version

    def swapped(task: AuditTask) -> TaskResult:  # a worker that answers with another version's binding
        result = real(task)
        return replace(result, version=result.version + 1)

    class InProcess:  # the executor seam run inline, so the swapped worker function is the one called
        name, workers = "inline", 1

        def map(self, fn: Any, items: list[Any]) -> Any:
            return SimpleNamespace(gather=lambda: [fn(i) for i in items])

    monkeypatch.setattr(audits, "audit_version", swapped)
    recorded: list[str] = []
    run_ = audits.audit_models(
        vault=registry.vault,
        models="tiny-a",
        data=load_data(registry.data),
        executor=InProcess(),  # type: ignore[arg-type]
        settings=SETTINGS,
        record=lambda v: recorded.append(v.ref),
    )
    assert recorded == [] and run_.versions[0].error == "IntegrityError: result for another task"

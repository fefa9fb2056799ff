"""The Dask backend on a 2-worker LocalCluster (127.0.0.1): same results as local; killed worker retried."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from bastion.compute import scan_dataset
from bastion.compute.dask import DaskExecutor
from bastion.compute.datasets import ScanTask, list_partitions, scan_partition
from bastion.compute.local import LocalExecutor
from bastion.errors import ServiceError

from .conftest import write_dataset


@pytest.fixture(scope="module")
def local2():
    with LocalExecutor(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def dask2():
    with DaskExecutor(workers=2) as ex:
        yield ex


def test_cluster_is_loopback_only(dask2: DaskExecutor) -> None:
    info = dask2.client.scheduler_info(n_workers=-1)
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
    assert dask2.workers == 2


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_dask_matches_local(
    datasets: dict[str, Path], dask2: DaskExecutor, local2: LocalExecutor, fmt: str
) -> None:
    a = scan_dataset(path=datasets[fmt], executor=local2, use_presidio=False).to_dict()
    b = scan_dataset(path=datasets[fmt], executor=dask2, use_presidio=False).to_dict()
    assert a == b


def test_killed_worker_task_is_retried(tmp_path: Path, dask2: DaskExecutor) -> None:
    root = write_dataset(tmp_path / "ds", "csv")
    # Make each partition slow enough to be killed mid-task: repeat its rows.
    for f in root.rglob("*.csv"):
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        f.write_text(lines[0] + "".join(lines[1:] * 25), encoding="utf-8")
    kind, files = list_partitions(root)
    tasks = [ScanTask(str(root), rel, kind, 20_000, 1 << 20, False) for rel in files]
    expected = [scan_partition(t).info for t in tasks]  # in this process: the reference
    client = dask2.client
    pids = client.run(os.getpid)
    job = dask2.map(scan_partition, tasks)
    victim, key = None, None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for addr, keys in client.processing().items():
            if keys:
                victim, key = addr, keys[0]
                break
        time.sleep(0.05)
    assert victim is not None, "no task was ever processing"
    os.kill(pids[victim], signal.SIGKILL)
    got = [p.info for p in job.gather()]
    assert got == expected
    assert job.progress().done == len(tasks) and job.progress().failed == 0
    # The scheduler's story of the killed task: taken back from the dead worker, then run to completion.
    story = [t for t in client.story(key) if t[0] == "scheduler"]
    # (the cleanup's transition reads processing -> released, waiting -> processing when the scheduler
    # re-assigns it at once, or released -> waiting when it queues it again: dask records any of them,
    # depending on timing; each is the scheduler taking this key back from the dead worker)
    retried = [
        t
        for t in story
        if (t[2], t[3]) in {("processing", "released"), ("waiting", "processing"), ("released", "waiting")}
        and str(t[-2]).startswith("handle-worker-cleanup")
    ]
    assert retried, story
    assert story[-1][3] == "memory" and story.index(retried[0]) < len(story) - 1
    # The nanny restarts the killed worker: the cluster is back to 2 workers for later tests.
    client.wait_for_workers(2, timeout=60)


def test_cancel_and_unreachable_cluster(datasets: dict[str, Path], dask2: DaskExecutor) -> None:
    kind, files = list_partitions(datasets["csv"])
    tasks = [ScanTask(str(datasets["csv"]), rel, kind, 20_000, 1 << 20, False) for rel in files]
    job = dask2.map(scan_partition, tasks)
    job.cancel()
    with pytest.raises(ServiceError, match="cancelled"):
        job.gather()
    with pytest.raises(ServiceError, match="could not reach"):
        DaskExecutor(address="tcp://127.0.0.1:9", timeout_s=2)


def test_cli_engine_dask_on_a_cluster_address(datasets: dict[str, Path], dask2: DaskExecutor, capsys) -> None:
    import json

    from bastion.cli import run

    address = dask2.client.scheduler_info(n_workers=-1)["address"]
    root = datasets["jsonl"]
    argv = ["data", "scan", str(root), "--no-presidio", "--format", "json"]
    assert run([*argv, "--engine", "dask", "--cluster", address]) == 0
    via_dask = json.loads(capsys.readouterr().out)
    assert run([*argv, "--engine", "local", "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == via_dask
    assert run([*argv, "--engine", "dask", "--cluster", address, "--workers", "3"]) == 2
    assert "sizes itself" in capsys.readouterr().err

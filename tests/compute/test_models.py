"""``bastion scan`` at scale: one task per file on an executor, a bucket prefix (moto on 127.0.0.1), and a
content-digest cache; the verdicts are the plain scanner's."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.compute.local import LocalExecutor
from bastion.compute.models import scan_models
from bastion.scan import ScanConfig, scan

from .._support.moto import moto_server, s3_env

# A pickle that would call os.system when loaded (it is only ever scanned here).
EVIL = b"cos\nsystem\n(S'echo owned'\ntR."


def _models(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    np.save(root / "weights.npy", np.arange(100, dtype=np.float32))
    (root / "sub" / "ok.pkl").write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=4))
    (root / "sub" / "evil.pkl").write_bytes(EVIL)
    (root / ".hidden.pkl").write_bytes(EVIL.replace(b"owned", b"again"))
    return root


def _verdicts(report: Any, root: str) -> dict[str, tuple[str, list[str]]]:
    out = {}
    for f in report.files:
        rel = f.path[len(root) + 1 :]
        out[rel] = (f.verdict.value, sorted(i.rule for i in f.issues))
    return out


def _by_path(report: Any) -> list[dict[str, Any]]:
    """A report's files in path order (the executor merges sorted; the walk lists files first)."""
    return sorted((f.to_dict() for f in report.files), key=lambda d: d["path"])


@pytest.fixture(scope="module")
def local1() -> Iterator[LocalExecutor]:
    with LocalExecutor(workers=1) as ex:
        yield ex


def test_tasks_and_cache_give_the_scanners_verdicts(local1: LocalExecutor, tmp_path: Path) -> None:
    root = _models(tmp_path / "models")
    plain = scan(paths=[root], config=ScanConfig())
    first, hits = scan_models(paths=[root], executor=local1, cache=tmp_path / "cache")
    assert hits == 0 and _by_path(first) == _by_path(plain) and first.verdict == plain.verdict
    assert {Path(f.path).name for f in first.files} >= {".hidden.pkl", "evil.pkl", "ok.pkl", "weights.npy"}
    assert first.exit_code == 1
    again, hits = scan_models(paths=[root], executor=local1, cache=tmp_path / "cache")
    assert hits == len(first.files) and again.to_dict() == first.to_dict()
    # a new allow-list entry changes the fingerprint: nothing is reused
    other, hits = scan_models(
        paths=[root], executor=local1, cache=tmp_path / "cache", config=ScanConfig(extra_allow=("os:getcwd",))
    )
    assert hits == 0 and other.exit_code == 1


def test_a_bucket_prefix_is_scanned_like_the_directory(
    local1: LocalExecutor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from bastion.cli import run

    root = _models(tmp_path / "models")
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        s3_env(mp, url)
        client = boto3.client("s3")
        client.create_bucket(Bucket="bastion-models")
        for p in root.rglob("*"):
            if p.is_file():
                client.put_object(
                    Bucket="bastion-models", Key=f"zoo/{p.relative_to(root).as_posix()}", Body=p.read_bytes()
                )
        with LocalExecutor(workers=1) as ex:  # started with the bucket's environment
            remote, hits = scan_models(
                paths=["s3://bastion-models/zoo"], executor=ex, cache="s3://bastion-models/cache"
            )
            assert hits == 0
            again, hits = scan_models(
                paths=["s3://bastion-models/zoo"], executor=ex, cache="s3://bastion-models/cache"
            )
        assert hits == len(remote.files) and again.to_dict() == remote.to_dict()
        local, _ = scan_models(paths=[root], executor=local1)
        assert _verdicts(remote, "s3://bastion-models/zoo") == _verdicts(local, str(root))
        assert run(["scan", "s3://bastion-models/zoo", "--format", "sarif", "--workers", "1"]) == 1
        sarif = json.loads(capsys.readouterr().out)
        uris = {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif["runs"][0]["results"]
        }
        assert any("evil.pkl" in u for u in uris) and any(".hidden.pkl" in u for u in uris)

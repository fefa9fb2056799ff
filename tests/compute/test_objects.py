"""Datasets on an object store (s3:// against a real moto server on 127.0.0.1): the same results and bytes
as the same dataset on local disk, through the library and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from bastion.compute import protect_dataset, risk_dataset, scan_dataset  # noqa: E402
from bastion.compute.datasets import list_partitions  # noqa: E402
from bastion.compute.local import LocalExecutor  # noqa: E402
from bastion.compute.objects import _local_name, as_url, list_objects  # noqa: E402
from bastion.crypto.kdf import KdfParams  # noqa: E402
from bastion.errors import NotFound  # noqa: E402
from bastion.vault import Vault, init_project  # noqa: E402

from .._support.moto import SECRET, moto_server, s3_env  # noqa: E402

PASSPHRASE = "correct horse battery staple"
BUCKET = "bastion-lake"
QIS = ["zip", "gender"]


@pytest.fixture(scope="module")
def lake(datasets: dict[str, Path]) -> Iterator[str]:
    """The Parquet dataset uploaded to s3://bastion-lake/raw (``_SUCCESS`` included); the env points at it."""
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        s3_env(mp, url)
        mp.setenv("BASTION_PASSPHRASE", PASSPHRASE)  # the spawned workers' own environment
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        root = datasets["parquet"]
        for p in sorted(root.rglob("*")):
            if p.is_file():
                client.put_object(
                    Bucket=BUCKET, Key=f"raw/{p.relative_to(root).as_posix()}", Body=p.read_bytes()
                )
        yield f"s3://{BUCKET}/raw"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    home = tmp_path_factory.mktemp("home") / "h"
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[])
    yield v
    v.close()


@pytest.fixture(scope="module")
def local2(lake: str) -> Iterator[LocalExecutor]:
    with LocalExecutor(workers=2) as ex:  # started after the env is set: the workers inherit it
        yield ex


def _objects(prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3")
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {
        o["Key"][len(prefix) + 1 :]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listing
    }


def _no_path(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "path"}


def test_urls_and_listing(lake: str, datasets: dict[str, Path]) -> None:
    assert as_url("s3://b/p/") == "s3://b/p"
    assert as_url(Path("s3://b/p")) == "s3://b/p"  # what a CLI Path argument makes of it
    assert as_url("/data/x") is None and as_url("file:///data/x") is None
    assert as_url(Path("c:/x")) is None
    for key, name in [("a/b.parquet", "b.parquet"), ("a/..", "object"), ("a/", "object"), (".", "object")]:
        assert _local_name(key) == name  # a staged copy never lands outside its private directory
    assert list_partitions(lake) == list_partitions(datasets["parquet"])
    single, rels = list_objects(lake)
    assert not single and "_SUCCESS" not in rels
    with pytest.raises(NotFound):
        list_partitions(f"s3://{BUCKET}/nothing-here")


def test_s3_dataset_gives_the_local_results_and_bytes(
    lake: str, datasets: dict[str, Path], vault: Vault, local2: LocalExecutor, tmp_path: Path
) -> None:
    src = datasets["parquet"]
    local = scan_dataset(path=src, executor=local2, use_presidio=False).to_dict()
    remote = scan_dataset(path=lake, executor=local2, use_presidio=False).to_dict()
    assert remote["path"] == lake and _no_path(remote) == _no_path(local)
    assert any(c["name"] == "contact" and c["entities"] for c in remote["columns"])  # seen in the last part

    a = protect_dataset(vault, path=src, out=tmp_path / "a", executor=local2, use_presidio=False)
    out = f"s3://{BUCKET}/protected"
    b = protect_dataset(vault, path=lake, out=out, executor=local2, use_presidio=False)
    assert b.output_digest == a.output_digest and b.output == out and b.resumed == 0
    written = _objects("protected")
    for p in a.partitions:
        assert written[p.relpath] == (tmp_path / "a" / p.relpath).read_bytes()
    assert "_bastion_job.json" in written and any(k.startswith("_bastion_done/") for k in written)
    again = protect_dataset(vault, path=lake, out=out, executor=local2, use_presidio=False)
    assert again.resumed == len(a.partitions) and again.output_digest == a.output_digest

    ra = risk_dataset(path=src, quasi_identifiers=QIS, k=3, executor=local2).to_dict()
    rb = risk_dataset(path=lake, quasi_identifiers=QIS, k=3, executor=local2).to_dict()
    assert _no_path(rb) == _no_path(ra) and rb["path"] == lake


def test_cli_takes_bucket_urls(
    lake: str, datasets: dict[str, Path], vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    home = str(vault.settings.home)
    out = f"s3://{BUCKET}/cli-out"
    argv = ["data", "protect", lake, "--out", out, "--home", home, "--workers", "1", "--format", "json"]
    assert run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == out and result["rows"] == 600 and len(result["partitions"]) == 4
    assert (
        run(["data", "scan", out, "--format", "json", "--workers", "1"]) == 0
    )  # no --engine: a URL is a dataset
    scanned = json.loads(capsys.readouterr().out)
    assert scanned["path"] == out and scanned["rows"] == 600
    assert run(["data", "risk", f"s3://{BUCKET}/none", "--quasi-identifiers", "zip", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "none" in err and SECRET not in err and "Traceback" not in err

"""The Spark backend (local[2] master, 127.0.0.1): scan, protect and risk give what the local engine gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

from bastion.compute import make_executor, protect_dataset, risk_dataset, scan_dataset
from bastion.compute.local import LocalExecutor
from bastion.crypto.kdf import KdfParams
from bastion.errors import ServiceError
from bastion.vault import Vault, init_project

PASSPHRASE = "correct horse battery staple"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark2() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_PASSPHRASE", PASSPHRASE)  # the JVM and its Python workers inherit it
        with make_executor(engine="spark", workers=2) as ex:
            yield ex


def _boom(x: int) -> int:
    raise ValueError(f"secret-cell-{x}")


def test_spark_matches_local(datasets: dict[str, Path], spark2: Any, tmp_path: Path) -> None:
    vault: Vault = init_project(
        home=tmp_path / "home", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]
    )
    try:
        src = datasets["parquet"]
        with LocalExecutor(workers=1) as local:
            a = scan_dataset(path=src, executor=local, use_presidio=False).to_dict()
            pa = protect_dataset(vault, path=src, out=tmp_path / "a", executor=local, use_presidio=False)
            ra = risk_dataset(path=src, quasi_identifiers=["zip", "gender"], k=3, executor=local).to_dict()
        assert scan_dataset(path=src, executor=spark2, use_presidio=False).to_dict() == a
        pb = protect_dataset(vault, path=src, out=tmp_path / "b", executor=spark2, use_presidio=False)
        assert pb.output_digest == pa.output_digest and pb.engine == "spark"
        for p in pa.partitions:
            assert (tmp_path / "b" / p.relpath).read_bytes() == (tmp_path / "a" / p.relpath).read_bytes()
        rb = risk_dataset(path=src, quasi_identifiers=["zip", "gender"], k=3, executor=spark2).to_dict()
        assert rb == ra
    finally:
        vault.close()
    with pytest.raises(ServiceError, match="ValueError") as info:
        spark2.map(_boom, [1, 2]).gather()
    assert "secret-cell" not in str(info.value)

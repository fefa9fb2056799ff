"""Stored-artifact inspector conformance (issue 13 item 5): the contract of :mod:`bastion.vault.interface`,
run for every form of the installed scanner — ``inspect_stored`` (authenticated range reads of the stored
version) and the plain path callable (a private decrypted copy).

Contract: an inspector judges exactly the stored bytes; raising ``UnsafeArtifact`` refuses the version, which
then never becomes visible, leaves no blob behind and releases its number; an accepted version pulls back
byte for byte."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import UnsafeArtifact
from bastion.scan.stored import RegistryInspector
from bastion.store.blobs import FileBlobStore
from bastion.vault import Vault, init_project
from bastion.vault.interface import StoredArtifact, StoredInspector


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def _stored_form() -> Any:
    inspector = RegistryInspector()
    assert isinstance(inspector, StoredInspector)
    return inspector


def _path_form() -> Any:
    scanner = RegistryInspector()

    def by_path(path: Path) -> None:  # a plain callable: the vault hands it a private decrypted copy
        scanner(path)

    assert not isinstance(by_path, StoredInspector)
    return by_path


@pytest.fixture(params=[pytest.param(_stored_form, id="inspect_stored"), pytest.param(_path_form, id="path")])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    factory: Callable[[], Any] = request.param
    v = init_project(
        home=tmp_path / "home", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[factory()]
    )
    yield v
    v.close()


def _safe(root: Path) -> Path:
    root.mkdir()
    np.save(root / "w.npy", np.arange(300, dtype=np.float32))
    (root / "config.json").write_text('{"layers": 2}')
    return root


def test_an_accepted_version_pulls_back_byte_for_byte(vault: Vault, tmp_path: Path) -> None:
    src = _safe(tmp_path / "safe")
    assert vault.push(src, name="m").version == 1
    vault.pull("m", out=tmp_path / "out")
    for name in ("w.npy", "config.json"):
        assert (tmp_path / "out" / name).read_bytes() == (src / name).read_bytes()


@pytest.mark.parametrize("layout", ["directory", "single-file"])
def test_a_refused_version_leaves_nothing(vault: Vault, tmp_path: Path, layout: str) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(UnsafeArtifact, match=r"model\.pkl"):
        vault.push(bad if layout == "directory" else bad / "model.pkl", name="m")
    assert vault.list() == []
    blobs = vault.blobs
    assert isinstance(blobs, FileBlobStore) and list(blobs.digests()) == []  # deleted, no orphan
    assert vault.push(_safe(tmp_path / "safe"), name="m").version == 1  # the number was released
    last = [e for e in vault.audit.entries() if e.action == "registry:push"][-2]
    assert (last.outcome, last.details.get("error")) == ("denied", "UnsafeArtifact")


def test_the_inspector_reads_the_stored_bytes(tmp_path: Path) -> None:
    """What an inspect_stored inspector is handed: the version as stored (sorted files, authenticated
    sizes and bytes), before it is visible."""
    seen: dict[str, bytes] = {}

    class Recorder:
        def inspect_stored(self, artifact: StoredArtifact) -> None:
            assert artifact.name == "m" and artifact.version == 1
            assert list(artifact.files) == sorted(artifact.files)
            for rel in artifact.files:
                with artifact.open(rel) as fh:
                    fh.seek(0, 2)
                    assert fh.tell() == artifact.size(rel)
                    fh.seek(0)
                    seen[rel] = fh.read()

    v = init_project(
        home=tmp_path / "home", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[Recorder()]
    )
    try:
        src = _safe(tmp_path / "safe")
        v.push(src, name="m")
        assert seen == {p.name: p.read_bytes() for p in src.iterdir()}
    finally:
        v.close()

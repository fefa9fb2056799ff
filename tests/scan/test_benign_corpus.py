"""False positives on real benign models (issue 19 goal: ≥ 95 % scan clean and load through ``safe_load``).

The corpus is generated from the installed libraries by :mod:`tests.scan.benign_corpus`; the fast test uses a
small part of it, the slow one every architecture, estimator and format and reports each miss.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.errors import BastionError
from bastion.scan import ScanConfig, Verdict, safe_load, scan

from .benign_corpus import build

#: formats safe_load deliberately does not load (text model files; TorchScript carries code), and files that
#: are not models on their own (ONNX external tensors, Keras ``.weights.h5`` without an architecture)
NOT_LOADED = {"text", "json", "torchscript", "onnx-external-data", "hdf5"}


def _rates(root: Path, *, full: bool) -> tuple[list[str], list[str], int, int]:
    corpus = build(root, full=full)
    # TorchScript carries code torch.jit.load runs: unsafe unless allowed (issue 19, F3); judged here as a
    # user who allowed it sees it, and checked to be refused by default for exactly that reason
    report = scan(paths=[root], config=ScanConfig(unsafe_allow_torchscript=True))
    assert len(report.files) == sum(len(v) for v in corpus.values())
    scripts = [f.path for f in report.files if f.format == "torchscript"]
    for path in scripts:
        assert [i.rule for i in scan(paths=[path]).issues] == ["torchscript-code"]
    unclean = [
        f"{Path(f.path).relative_to(root)}: {(f.issues or f.errors)[0].message}"  # type: ignore[union-attr]
        for f in report.files
        if f.verdict is not Verdict.safe
    ]
    refused = []
    loadable = [f for f in report.files if f.format not in NOT_LOADED]
    for f in loadable:
        try:
            safe_load(f.path)
        except BastionError as exc:
            refused.append(f"{Path(f.path).relative_to(root)}: {exc}")
    return unclean, refused, len(report.files), len(loadable)


def test_benign_corpus_scans_clean_and_loads(tmp_path: Path) -> None:
    unclean, refused, n_files, n_loadable = _rates(tmp_path, full=False)
    assert n_files >= 25 and n_loadable >= 20
    assert not unclean
    assert not refused


@pytest.mark.slow
def test_full_benign_corpus_clean_rate(tmp_path: Path) -> None:
    unclean, refused, n_files, n_loadable = _rates(tmp_path, full=True)
    clean_rate = 1 - len(unclean) / n_files
    load_rate = 1 - len(refused) / n_loadable
    print(f"benign corpus: {n_files} files, {clean_rate:.1%} clean, {load_rate:.1%} of {n_loadable} loaded")
    assert n_files >= 120
    assert clean_rate >= 0.95, unclean
    assert load_rate >= 0.95, refused
    assert not unclean, unclean  # today: none (a library upgrade that breaks this: regenerate the allow-list)


def _onnx_with_external(root: Path) -> tuple[Path, Path]:
    from .benign_corpus import write_onnx

    files = write_onnx(root, full=False)
    model = next(p for p in files if p.name == "model.onnx")
    return model, model.parent / "weights.bin"


def test_onnx_external_data_is_safe_only_next_to_its_model(tmp_path: Path) -> None:
    model, weights = _onnx_with_external(tmp_path)
    together = scan(paths=[model.parent])
    assert together.verdict is Verdict.safe
    assert {f.format for f in together.files} == {"onnx", "onnx-external-data"}
    assert scan(paths=[weights]).verdict is Verdict.error  # alone, raw bytes are not a model bastion knows
    from .conftest import call, g, s, wrap

    weights.write_bytes(wrap(call(g("os", "system", 2), s("id")), 2))  # a pickle where the tensors were
    assert scan(paths=[model.parent]).verdict is Verdict.unsafe


class _Stored:
    """The vault's stored-version interface as the inspector uses it (files, open, size)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def open(self, rel: str):  # type: ignore[no-untyped-def]
        return (self.root / rel).open("rb")

    def size(self, rel: str) -> int:
        return (self.root / rel).stat().st_size


def test_stored_inspector_accepts_onnx_external_data(tmp_path: Path) -> None:
    from bastion.errors import UnsafeArtifact
    from bastion.scan.stored import registry_inspector

    model, weights = _onnx_with_external(tmp_path)
    registry_inspector.inspect_stored(_Stored(model.parent))
    model.unlink()
    with pytest.raises(UnsafeArtifact):
        registry_inspector.inspect_stored(_Stored(weights.parent))


def test_keras_models_load_through_keras_safe_mode(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the installed torch
    pytest.importorskip("keras")
    from bastion.errors import InvalidInput

    from .benign_corpus import write_keras

    files = {p.name: p for p in write_keras(tmp_path, full=True)}
    model = safe_load(files["keras-functional.keras"])
    assert type(model).__module__.startswith("keras") and len(model.layers) == 3
    assert scan(paths=[files["keras-sequential.h5"]]).verdict is Verdict.safe
    with pytest.raises(InvalidInput, match="legacy HDF5"):
        safe_load(files["keras-sequential.h5"])  # clean, but only the .keras format is loaded

"""Regressions for the second cold attack on the format handlers (issue 19, findings F1–F7).

Every malicious file is built here, small (no real bombs), and judged both ways where it is cheap: the
scanner refuses it, and the benign file of the same shape still scans safe.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import pytest

from bastion.scan import Verdict, scan, scan_bytes

EVIL = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85R."  # os.system("id"), never run


def _tar(members: list[tuple[str, bytes, dict[str, object]]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, kw in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in kw.items():
                setattr(info, k, v)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _storage_record() -> bytes:
    # ("0", "cpu", torch.FloatStorage) as torch's legacy tar writer pickles it
    return b"\x80\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\n\x87."


def _storages(*, count: int = 1, views: bytes = b"\x80\x02].", tail: bytes = b"") -> bytes:
    records = _storage_record() + struct.pack("<q", 2) + b"\0" * 8
    return pickle.dumps(count, protocol=2) + records + views + tail


def _tensors() -> bytes:
    record = b"\x80\x02X\x01\x00\x00\x001X\x01\x00\x00\x000ctorch\nFloatTensor\n\x87."
    meta = (
        struct.pack("<i", 1) + b"\0" * 4 + struct.pack("<q", 2) + struct.pack("<q", 1) + struct.pack("<q", 0)
    )
    return pickle.dumps(1, protocol=2) + record + meta


def _legacy_tar(storages: bytes, *, sys_info: bool = True, extra: list | None = None) -> bytes:  # type: ignore[type-arg]
    members: list[tuple[str, bytes, dict[str, object]]] = list(extra or [])
    if sys_info:
        members.append(("sys_info", pickle.dumps({}, protocol=2), {}))
    members += [
        ("storages", storages, {}),
        ("tensors", _tensors(), {}),
        ("pickle", pickle.dumps({"w": 1}), {}),
    ]
    return _tar(members)


# -- F1 / F1b / F1c: the legacy torch tar is read as torch's legacy_load reads it ----------------------------
def test_legacy_tar_benign_is_safe() -> None:
    for sys_info in (True, False):
        report = scan_bytes(_legacy_tar(_storages(), sys_info=sys_info), name="ok.tar")
        assert report.format == "torch-legacy-tar" and report.verdict is Verdict.safe, report


def test_legacy_tar_storage_views_pickle_is_analysed() -> None:
    report = scan_bytes(_legacy_tar(_storages(views=EVIL)), name="f1.tar")
    assert report.verdict is Verdict.unsafe
    assert any(i.callable == "posix.system" for i in report.issues)


@pytest.mark.parametrize("sys_info", [True, False])
def test_legacy_tar_second_storage_record_is_analysed(sys_info: bool) -> None:
    # count 2: the second "record" is the payload (F1c: without sys_info the tar is still torch's legacy tar)
    report = scan_bytes(_legacy_tar(_storages(count=2, views=EVIL), sys_info=sys_info), name="f1c.tar")
    assert report.format == "torch-legacy-tar" and report.verdict is Verdict.unsafe
    assert any(i.callable == "posix.system" for i in report.issues)


def test_legacy_tar_leftover_bytes_are_an_error() -> None:
    report = scan_bytes(_legacy_tar(_storages(tail=b"\0" * 16)), name="tail.tar")
    assert report.verdict is not Verdict.safe
    assert any("bytes after the records" in e.message for e in report.errors)


@pytest.mark.parametrize("kind", [tarfile.LNKTYPE, tarfile.SYMTYPE])
def test_legacy_tar_member_links_are_refused(kind: bytes) -> None:
    x = _storages(count=2, views=EVIL)
    data = _tar(
        [
            ("x", x, {}),
            ("storages", b"", {"type": kind, "linkname": "x"}),
            ("tensors", _tensors(), {}),
            ("pickle", pickle.dumps({"w": 1}), {}),
        ]
    )
    report = scan_bytes(data, name="f1b.tar")
    assert report.verdict is Verdict.unsafe
    assert any(i.rule == "torch-legacy-link" for i in report.issues)


def test_legacy_tar_pickle_member_is_read_as_a_pickle() -> None:
    data = _tar(
        [("storages", _storages(), {}), ("tensors", _tensors(), {}), ("pickle", EVIL, {})],
    )
    assert scan_bytes(data, name="p.tar").verdict is Verdict.unsafe


def test_legacy_tar_benign_loads_with_torch(tmp_path: Path) -> None:
    """The benign tar built here is a real legacy checkpoint: torch.load reads it (the parser is torch's)."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "ok.tar"
    path.write_bytes(_legacy_tar(_storages()))
    assert scan(paths=[path]).verdict is Verdict.safe
    assert torch.load(path, weights_only=False) == {"w": 1}

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

from bastion.scan import ScanConfig, Verdict, scan, scan_bytes

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


# -- F3: TorchScript code runs in torch.jit.load: unsafe unless explicitly allowed ---------------------------
_FROM_FILE = """class M(Module):
  def __setstate__(self: __torch__.m.M, state: Tuple[Tensor, bool]) -> NoneType:
    t = torch.from_file("/tmp/x", True, 16, dtype=0)
    return None
"""


def _script_zip(code: str) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("m/constants.pkl", b"\x80\x02).")
        zf.writestr("m/code/__torch__/m.py", code)
        zf.writestr("m/version", "3\n")
    return buf.getvalue()


def test_torchscript_is_unsafe_unless_allowed() -> None:
    benign = _script_zip("class M(Module):\n  pass\n")
    report = scan_bytes(benign, name="m.pt")
    assert report.verdict is Verdict.unsafe and [i.rule for i in report.issues] == ["torchscript-code"]
    allowed = scan_bytes(benign, name="m.pt", config=ScanConfig(unsafe_allow_torchscript=True))
    assert allowed.verdict is Verdict.safe, allowed


@pytest.mark.parametrize(
    "call",
    [
        "torch.from_file(p, True, 16)",
        "ops.image.write_file(p, t)",
        "torch.ops.myns.run(t)",
        "torch.classes.x.Y()",
    ],
)
def test_allowed_torchscript_still_refuses_file_access_and_custom_ops(call: str) -> None:
    code = f"class M(Module):\n  def forward(self, p: str, t: Tensor):\n    x = {call}\n    return t\n"
    allowed = ScanConfig(unsafe_allow_torchscript=True)
    report = scan_bytes(_script_zip(code), name="m.pt", config=allowed)
    assert any(i.rule == "torchscript-denied-op" for i in report.issues), report
    ok = "class M(Module):\n  def forward(self, t: Tensor):\n    return ops.aten.relu(torch.add(t, 1))\n"
    assert scan_bytes(_script_zip(ok), name="m.pt", config=allowed).verdict is Verdict.safe


def test_torchscript_flag_in_bastion_toml() -> None:
    assert ScanConfig.from_section({"unsafe_allow_torchscript": True}).unsafe_allow_torchscript
    from bastion.errors import ConfigError

    with pytest.raises(ConfigError):
        ScanConfig.from_section({"unsafe_allow_torchscript": "yes"})


def test_audit_loader_refuses_torchscript_not_allowed(tmp_path: Path) -> None:
    """``open_model`` (``bastion audit``) must not jit.load an archive the user did not allow (F3)."""
    torch = pytest.importorskip("torch")
    from bastion.adversarial.loading import TRUST_TORCHSCRIPT, open_model
    from bastion.errors import UnsafeArtifact

    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeArtifact) as err, open_model(str(path), input_shape=(2,), n_classes=2):
        pass
    assert TRUST_TORCHSCRIPT in (err.value.hint or "")
    with open_model(str(path), input_shape=(2,), n_classes=2, trusted_types=(TRUST_TORCHSCRIPT,)) as m:
        assert m.kind == "torchscript"


# -- F2: torch zip members named data/<n> are skipped only when a pickle loads them by persistent id -------
def _npy_object(payload: bytes) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([1], dtype=object), allow_pickle=True)
    head = buf.getvalue()
    return head[: 10 + int.from_bytes(head[8:10], "little")] + payload


def _torch_zip(data_pkl: bytes, tensor: bytes) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", b"3\n")
        zf.writestr("archive/data/0", tensor)
    return buf.getvalue()


def _state_dict_pkl() -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf)
    import zipfile

    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    return zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))


def test_unreferenced_tensor_record_is_scanned() -> None:
    # np.load(allow_pickle=True)["archive/data/0"] unpickles it; data.pkl does not reference it
    report = scan_bytes(_torch_zip(pickle.dumps({}, protocol=2), _npy_object(EVIL)), name="f2.npz")
    assert report.verdict is Verdict.unsafe
    assert any(i.callable == "posix.system" for i in report.issues)
    raw = scan_bytes(_torch_zip(pickle.dumps({}, protocol=2), b"\0" * 16), name="raw.pt")
    assert raw.verdict is not Verdict.safe  # unknown bytes no pickle reads as a tensor: never skipped


def test_referenced_tensor_record_with_loader_magic_is_scanned() -> None:
    pkl = _state_dict_pkl()
    assert scan_bytes(_torch_zip(pkl, b"\x01\x02" * 8), name="ok.pt").verdict is Verdict.safe
    assert scan_bytes(_torch_zip(pkl, b"\x80\x02" + b"\x11" * 14), name="f.pt").verdict is Verdict.safe
    assert scan_bytes(_torch_zip(pkl, _npy_object(EVIL)), name="f2b.pt").verdict is Verdict.unsafe
    assert scan_bytes(_torch_zip(pkl, EVIL + b"\0" * 3), name="f2c.pt").verdict is Verdict.unsafe


# -- F6: the end record is found as zipfile/miniz find it (trailing bytes, bytes before the archive) ---------
def _zip_with(member: str, data: bytes) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
    return buf.getvalue()


def _safetensors_u8(data: bytes) -> bytes:
    import json

    header = json.dumps({"t": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize("trailing", [b"", b"\n\n", b"x" * 100])
def test_zip_inside_safetensors_with_trailing_bytes_is_scanned(trailing: bytes) -> None:
    import zipfile

    data = _safetensors_u8(_zip_with("model.pkl", EVIL) + trailing)
    assert zipfile.is_zipfile(io.BytesIO(data))  # what skops, keras and numpy's npz reader see
    report = scan_bytes(data, name="f6.safetensors")
    assert report.verdict is Verdict.unsafe, report
    assert any(i.callable == "posix.system" for i in report.issues)
    benign = scan_bytes(_safetensors_u8(_zip_with("a.txt", b"hello") + trailing), name="ok.safetensors")
    assert benign.verdict is not Verdict.unsafe


def test_eocd_signature_in_tensor_bytes_alone_does_not_make_a_zip() -> None:
    # a signature whose central directory is not there: no reader opens it (an all-zero record would be a
    # valid empty zip for zipfile, and is read as one)
    data = _safetensors_u8(b"\0" * 64 + b"PK\x05\x06" + b"\x11" * 60)
    report = scan_bytes(data, name="ok.safetensors")
    assert report.format == "safetensors" and report.verdict is Verdict.safe, report


# -- F4: joblib's "ZF" compat files are read; ONNX external data is promoted only when covered exactly -------
def _zfile(payload: bytes) -> bytes:
    import zlib

    return b"ZF" + hex(len(payload)).encode().ljust(19) + zlib.compress(payload)


def _onnx_reading(path: Path, location: str, spans: list[tuple[int, int | None]]) -> None:
    from onnx import TensorProto, helper

    inits = []
    for i, (offset, length) in enumerate(spans):
        t = TensorProto(name=f"W{i}", data_type=TensorProto.UINT8, dims=[length or 0])
        t.data_location = TensorProto.EXTERNAL
        info = [("location", location), ("offset", str(offset))]
        info += [("length", str(length))] if length is not None else []
        for k, v in info:
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W0"], ["Y"])],
        "g",
        [],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


def test_joblib_compat_file_is_read_as_joblib_reads_it(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    benign = tmp_path / "ok.joblib"
    benign.write_bytes(_zfile(pickle.dumps({"a": [1, 2]}, protocol=2)))
    assert joblib.load(benign) == {"a": [1, 2]}  # the format is real: joblib loads it
    report = scan(paths=[benign])
    assert report.files[0].format == "joblib-compat:pickle" and report.verdict is Verdict.safe
    evil = scan_bytes(_zfile(EVIL), name="evil.joblib")
    assert evil.verdict is Verdict.unsafe and any(i.callable == "posix.system" for i in evil.issues)


def test_zfile_bomb_is_bounded() -> None:
    import zlib

    bomb = b"ZF" + hex(1 << 30).encode().ljust(19) + zlib.compress(b"\0" * (64 << 20), 9)
    report = scan_bytes(bomb, name="bomb.joblib", config=ScanConfig(max_archive_bytes=8 << 20))
    assert report.verdict is Verdict.unsafe and report.issues[0].rule == "archive-bomb"


def test_onnx_external_data_names_a_joblib_compat_file(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(_zfile(EVIL))
    _onnx_reading(tmp_path / "model.onnx", "model.joblib", [(0, 4)])
    assert scan(paths=[tmp_path]).verdict is Verdict.unsafe


@pytest.mark.parametrize(
    ("spans", "promoted"),
    [
        ([(0, 16)], True),
        ([(0, None)], True),
        ([(0, 8), (8, 8)], True),
        ([(0, 4)], False),  # 12 bytes no tensor reads
        ([(4, 12)], False),
        ([(0, 8), (9, 7)], False),  # a gap
        ([(0, 20)], False),  # reads past the end
    ],
)
def test_external_data_promoted_only_when_covered_exactly(
    tmp_path: Path, spans: list[tuple[int, int | None]], promoted: bool
) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(range(1, 17)))
    _onnx_reading(tmp_path / "model.onnx", "weights.bin", spans)
    report = scan(paths=[tmp_path])
    assert (report.verdict is Verdict.safe) is promoted, report


def test_external_data_with_a_model_name_or_loader_magic_is_not_promoted(tmp_path: Path) -> None:
    (tmp_path / "weights.pkl").write_bytes(bytes(range(1, 17)))
    _onnx_reading(tmp_path / "model.onnx", "weights.pkl", [(0, 16)])
    assert scan(paths=[tmp_path]).verdict is not Verdict.safe


# -- F5: LZMA zip members inflate under the same bounds; overlapping entries are refused before inflating ----
def _lzma_zip(data: bytes, name: str = "weights.bin") -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_LZMA) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def test_lzma_zip_member_is_read() -> None:
    report = scan_bytes(_lzma_zip(pickle.dumps({"a": 1}), "model.pkl"), name="ok.zip")
    assert report.verdict is Verdict.safe, report
    evil = scan_bytes(_lzma_zip(EVIL, "model.pkl"), name="evil.zip")
    assert evil.verdict is Verdict.unsafe and any(i.callable == "posix.system" for i in evil.issues)


def test_lzma_zip_bomb_is_stopped_with_bounded_memory() -> None:
    import tracemalloc

    bomb = _lzma_zip(b"\0" * (48 << 20))  # ~7 KB on disk
    assert len(bomb) < 64 << 10
    tracemalloc.start()
    try:
        report = scan_bytes(bomb, name="bomb.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.verdict is Verdict.unsafe and report.issues[0].rule == "archive-bomb"
    assert peak < 16 << 20, peak  # unbounded inflation held all 48 MiB at once


def _duplicate_central_entry(data: bytes, new_name: bytes) -> bytes:
    """Add a second central-directory entry for the first member's bytes (same local header offset)."""
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, eocd + 12)
    entry = bytearray(data[cd_offset : cd_offset + cd_size])
    nlen = struct.unpack_from("<H", entry, 28)[0]
    first = bytes(
        entry[: 46 + nlen + struct.unpack_from("<HH", entry, 30)[0] + struct.unpack_from("<H", entry, 32)[0]]
    )
    dup = bytearray(first[:46]) + new_name + first[46 + nlen :]
    struct.pack_into("<H", dup, 28, len(new_name))
    cd = bytes(entry) + bytes(dup)
    end = bytearray(data[eocd : eocd + 22])
    count = struct.unpack_from("<H", end, 8)[0] + 1
    struct.pack_into("<HHII", end, 8, count, count, len(cd), cd_offset)
    return data[:cd_offset] + cd + bytes(end)


def test_overlapping_entries_are_refused_before_any_member_is_inflated() -> None:
    import zipfile

    data = _duplicate_central_entry(_lzma_zip(pickle.dumps([1]), "a.pkl"), b"b.pkl")
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 2
    report = scan_bytes(data, name="overlap.zip")
    assert "zip-overlapping-entries" in {i.rule for i in report.issues}
    assert report.members == (".: zip",)  # no member was inflated or walked


# -- F7: a symlink loop in a scanned directory is reported for its paths; the rest is scanned ----------------
def test_symlink_loop_is_reported_per_path(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    report = scan(paths=[tmp_path])
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["model.pkl"].verdict is Verdict.safe
    assert by_name["loop1"].verdict is Verdict.error and "loop" in by_name["loop1"].errors[0].message
    assert report.exit_code == 2

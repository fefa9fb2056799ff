"""Truncated, garbage and adversarially deep inputs end in 'error' (exit 2), never in a traceback."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.cli import run
from bastion.scan import ScanConfig, Verdict, scan
from bastion.scan._io import Source
from bastion.scan._walk import Walker as _Walk


def _scan_bytes(data: bytes, config: ScanConfig | None = None) -> _Walk:
    from pathlib import Path

    walk = _Walk(config=config or ScanConfig(), path=Path("mem.bin"))
    walk.scan(Source(io.BytesIO(data)), "", 0)
    return walk


def test_truncated_pickles_are_errors(write) -> None:
    data = pickle.dumps({"a": [1, 2.5, "x" * 40], "b": (None, True, b"zz")}, protocol=4)
    for cut in range(1, len(data) - 1):
        walk = _scan_bytes(data[:cut])
        assert walk.errors and not walk.issues, cut


def test_truncated_torch_checkpoint(write) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf)
    data = buf.getvalue()
    for cut in (10, len(data) // 2, len(data) - 30):
        report = scan(paths=[write(f"cut{cut}.pt", data[:cut])])
        assert report.verdict is Verdict.error, cut
        assert report.exit_code == 2


def test_garbage(write) -> None:
    rng = __import__("random").Random(1234)
    for i in range(20):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
        report = scan(paths=[write(f"g{i}.bin", b"\x01" + blob)])
        assert report.verdict in (Verdict.error, Verdict.unsafe), i
    assert scan(paths=[write("empty.bin", b"")]).exit_code == 2


def test_deep_mark_nesting(write) -> None:
    report = scan(paths=[write("marks.pkl", b"\x80\x02" + b"(" * 200_000 + b".")])
    assert report.verdict is Verdict.error
    assert "nesting" in report.files[0].errors[0].message


def test_deep_container_nesting(write) -> None:
    deep = b"\x80\x02" + b"]" * 50_000 + b"a" * 49_999 + b"."
    report = scan(paths=[write("lists.pkl", deep)])
    assert report.verdict is Verdict.error
    assert "nesting" in report.files[0].errors[0].message


def test_huge_declared_lengths(write) -> None:
    for blob in (
        b"\x80\x04\x8d" + struct.pack("<Q", 1 << 60),
        b"\x80\x02X\xff\xff\xff\x7f",
        b"\x80\x02\x8b\xff\xff",
    ):
        assert scan(paths=[write("huge.pkl", blob)]).verdict is Verdict.error


def test_deep_json_headers(write) -> None:
    header = b"[" * 100_000 + b"]" * 100_000
    st_file = struct.pack("<Q", len(header)) + header
    report = scan(paths=[write("deep.safetensors", st_file)])
    assert report.verdict is Verdict.error
    bad_json = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    st_file = struct.pack("<Q", len(bad_json)) + bad_json
    assert scan(paths=[write("deep2.safetensors", st_file)]).verdict is Verdict.error


def test_nested_compression(write) -> None:
    data = pickle.dumps([1, 2, 3], protocol=2)
    for _ in range(12):
        data = gzip.compress(data)
    report = scan(paths=[write("onion.gz", data)])
    assert report.verdict is Verdict.error


def test_deep_input_through_cli_exits_2(write) -> None:
    path = write("marks.bin", b"(" * 100_000)
    assert run(["scan", str(path)]) == 2
    assert run(["scan", "--format", "json", str(path)]) == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=2048),
    st.sampled_from([b"", b"\x80\x02", b"\x80\x04\x95", b"PK\x03\x04", b"\x93NUMPY"]),
)
def test_fuzz_never_raises(data: bytes, prefix: bytes) -> None:
    walk = _scan_bytes(prefix + data)
    assert walk.members  # always classified, never an exception


def test_special_files_are_not_opened(tmp_path) -> None:
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)  # opening it for reading would block forever
    report = scan(paths=[tmp_path])
    assert report.verdict is Verdict.error
    assert report.files[0].errors[0].message == "not a regular file"


def test_json_text_is_safe(write) -> None:
    assert scan(paths=[write("c.json", json.dumps({"a": [1, 2]}).encode())]).verdict is Verdict.safe
    assert scan(paths=[write("notes.txt", b"contributing guide\nhello\n")]).verdict is Verdict.safe


_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.complex_numbers(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=5)
        | st.frozensets(st.integers(), max_size=4)
        | st.sets(st.text(max_size=4), max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=120, deadline=None)
@given(_plain, st.integers(min_value=0, max_value=5))
def test_stdlib_pickles_of_plain_data_are_safe(value, protocol) -> None:
    """Reference: whatever the standard pickler writes for plain data, the analyser walks it cleanly."""
    walk = _scan_bytes(pickle.dumps(value, protocol=protocol))
    assert not walk.issues and not walk.errors, (walk.issues, walk.errors)

"""Archive tricks: header disagreement, duplicates, traversal, bombs, overlaps, polyglots, nesting."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile

import numpy as np

from bastion.scan import ScanConfig, Verdict, scan


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.float32))
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def _rules(path) -> set[str]:
    return {i.rule for f in scan(paths=[path]).files for i in f.issues}


def test_benign_zip_and_tar_are_safe(write, craft) -> None:
    assert (
        scan(paths=[write("a.zip", _zip([("w.npy", _npy())], zipfile.ZIP_DEFLATED))]).verdict is Verdict.safe
    )
    assert scan(paths=[write("a.tgz", craft.tar_gz({"dir/w.npy": _npy()}))]).verdict is Verdict.safe


def test_duplicate_names(write) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = _zip([("data.pkl", b"\x80\x02N."), ("data.pkl", b"\x80\x02N.")])
    assert "archive-duplicate-name" in _rules(write("dup.zip", data))


def test_path_traversal_names(write) -> None:
    for name in ("../evil.pkl", "/etc/cron.d/x", "a\\..\\..\\b", "C:/x", "ok/../../x"):
        rules = _rules(write("t.zip", _zip([(name, _npy())])))
        assert "archive-path-traversal" in rules, name
    assert "archive-path-traversal" not in _rules(write("ok.zip", _zip([("ok/a..b/w.npy", _npy())])))


def test_tar_link_escape_and_traversal(write) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("weights.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../home/user/.ssh/id_rsa"
        tf.addfile(link)
        info = tarfile.TarInfo("../outside.npy")
        data = _npy()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    rules = _rules(write("bad.tar", buf.getvalue()))
    assert {"archive-link-escape", "archive-path-traversal"} <= rules


def test_zip_bomb_is_stopped_by_ratio_and_size(write) -> None:
    zeros = b"\x00" * (8 << 20)
    path = write("bomb.zip", _zip([("big.npy", zeros)], zipfile.ZIP_DEFLATED))
    bounded = ScanConfig(max_archive_ratio=100.0)
    report = scan(paths=[path], config=bounded)
    assert "archive-bomb" in {i.rule for i in report.files[0].issues}
    # the same archive under a permissive ratio is not called a bomb (it fails for another reason: no format)
    lax = scan(paths=[path], config=ScanConfig(max_archive_ratio=1e9))
    assert "archive-bomb" not in {i.rule for i in lax.files[0].issues}
    small_total = scan(paths=[path], config=ScanConfig(max_archive_ratio=1e9, max_archive_bytes=1 << 20))
    assert "archive-bomb" in {i.rule for i in small_total.files[0].issues}


def test_gzip_bomb(write) -> None:
    path = write("bomb.gz", gzip.compress(b"\x00" * (8 << 20)))
    report = scan(paths=[path], config=ScanConfig(max_archive_ratio=100.0))
    assert report.verdict is Verdict.unsafe
    assert report.files[0].issues[0].rule == "archive-bomb"


def test_overlapping_entries(write) -> None:
    """Two central-directory entries pointing at the same local record (Fifield's overlap bomb)."""
    data = bytearray(_zip([("a.npy", _npy()), ("b.npy", _npy())]))
    cd = data.find(b"PK\x01\x02")
    second = data.find(b"PK\x01\x02", cd + 4)
    struct.pack_into("<I", data, second + 42, 0)  # b.npy's local header offset -> a.npy's record
    rules = _rules(write("overlap.zip", bytes(data)))
    assert "zip-overlapping-entries" in rules
    assert "zip-header-mismatch" in rules


def test_polyglot_prefix_is_scanned(write, craft) -> None:
    payload = next(p for p in craft.PAYLOADS if p.name == "os.system")
    report = scan(paths=[write("model.zip", craft.polyglot(payload.pickle(2)))])
    issue = report.files[0].issues[0]
    assert issue.member == "<prefix>" and issue.callable == "os.system"
    clean = scan(paths=[write("clean.zip", craft.polyglot(b"\x80\x02N."))])
    assert clean.verdict is Verdict.safe


def test_nesting_depth_is_bounded(write) -> None:
    data = _npy()
    for i in range(12):
        data = _zip([(f"level{i}.zip", data)])
    report = scan(paths=[write("deep.zip", data)], config=ScanConfig(max_depth=8))
    assert report.verdict is Verdict.error
    assert report.exit_code == 2
    assert any("max_depth" in e.message for e in report.files[0].errors)


def test_encrypted_member_cannot_be_scanned(write) -> None:
    data = bytearray(_zip([("w.npy", _npy())]))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        idx = data.find(sig)
        struct.pack_into("<H", data, idx + off, 1)
    report = scan(paths=[write("enc.zip", bytes(data))])
    assert report.verdict is Verdict.error


def test_member_names_cannot_inject_lines(write, craft, capsys) -> None:
    from bastion.cli import run
    from bastion.errors import UnsafeArtifact
    from bastion.scan import inspect_artifact

    evil = craft.wrap(craft.call(craft.g("os", "system", 2), craft.s("id")), 2)
    path = write("inj.zip", _zip([("a\nSAFE   fake.pt\x1b[2K.pkl", evil)]))
    assert run(["scan", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nSAFE   fake.pt" not in out
    try:
        inspect_artifact(path)
    except UnsafeArtifact as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
    else:
        raise AssertionError("not refused")

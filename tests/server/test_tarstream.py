"""The tar stream push uploads and pull downloads: the escapes a hostile peer can put in a tar, measured
without the defence (plain ``tarfile`` extraction writes outside the target) and with it (refused, nothing
written outside, nothing partial kept by the caller)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from bastion.errors import InvalidInput
from bastion.server.tarstream import bytes_member, end_of_archive, extract_stream, file_member, tree_members


def _member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


ESCAPES = {
    "dotdot": (_member("../outside.txt"), b"x"),
    "absolute": (_member("/TMPDIR/outside-abs.txt"), b"x"),
    "symlink-then-write": (_member("files/ln", kind=tarfile.SYMTYPE, link="../.."), b""),
}


def _attack(name: str, tmp_path: Path) -> tuple[bytes, Path]:  # (tar, where the escape lands)
    """A tar that, extracted into ``tmp_path/target``, plants ``outside*`` in ``tmp_path``."""
    info, data = ESCAPES[name]
    members = [(info, data)]
    if name == "absolute":
        info.name = str(tmp_path / "outside.txt")
    if name == "symlink-then-write":  # a link to the parent, then a file written through it
        members.append((_member("files/ln/outside.txt"), b"through the link"))
    return _tar(*members), tmp_path / "outside.txt"


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_succeeds_without_the_defence_and_is_refused_with_it(name: str, tmp_path: Path) -> None:
    body, _ = _attack(name, tmp_path)
    naive = tmp_path / "naive" / "target"
    naive.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as t:
        t.extractall(naive, filter="fully_trusted")  # the attack, without the defence
    escaped = [p for p in tmp_path.rglob("outside*") if naive not in p.parents]
    assert escaped, "the attack should escape a plain extraction"
    for p in escaped:
        p.unlink()
    target = tmp_path / "defended"
    target.mkdir()
    with pytest.raises(InvalidInput):
        extract_stream(io.BytesIO(body), target, max_bytes=1 << 20, max_files=10)
    assert not [p for p in tmp_path.rglob("outside*")]


def test_hardlink_device_fifo_are_refused(tmp_path: Path) -> None:
    for info in (
        _member("files/hl", kind=tarfile.LNKTYPE, link="/etc/hostname"),
        _member("files/dev", kind=tarfile.CHRTYPE),
        _member("files/fifo", kind=tarfile.FIFOTYPE),
        _member("files/blk", kind=tarfile.BLKTYPE),
    ):
        target = tmp_path / info.name.replace("/", "_")
        target.mkdir()
        with pytest.raises(InvalidInput, match="link or device"):
            extract_stream(io.BytesIO(_tar((info, b""))), target, max_bytes=1 << 20, max_files=10)
        assert not list(target.iterdir())


def test_limits_duplicates_and_meta_order(tmp_path: Path) -> None:
    big = _tar((_member("files/a", b"a" * 2000), b"a" * 2000))
    with pytest.raises(InvalidInput, match="more than 1000 bytes"):
        extract_stream(io.BytesIO(big), _fresh(tmp_path, "1"), max_bytes=1000, max_files=10)
    many = _tar(*[(_member(f"files/{i}", b"x"), b"x") for i in range(5)])
    with pytest.raises(InvalidInput, match="more than 3 files"):
        extract_stream(io.BytesIO(many), _fresh(tmp_path, "2"), max_bytes=1 << 20, max_files=3)
    dup = _tar((_member("files/a"), b"x"), (_member("files/a"), b"x"))
    with pytest.raises(InvalidInput, match="twice"):
        extract_stream(io.BytesIO(dup), _fresh(tmp_path, "3"), max_bytes=1 << 20, max_files=10)
    late = _tar((_member("files/a"), b"x"), (_member("push.json", b"{}"), b"{}"))
    with pytest.raises(InvalidInput, match="must come first"):
        extract_stream(
            io.BytesIO(late), _fresh(tmp_path, "4"), meta_names=("push.json",), max_bytes=99, max_files=9
        )
    outside = _tar((_member("other/a"), b"x"))
    with pytest.raises(InvalidInput, match="unexpected member"):
        extract_stream(io.BytesIO(outside), _fresh(tmp_path, "5"), max_bytes=99, max_files=9)
    with pytest.raises(InvalidInput, match=r"not a tar stream|malformed"):
        extract_stream(io.BytesIO(b"not a tar at all" * 64), _fresh(tmp_path, "6"), max_bytes=99, max_files=9)


def test_written_stream_round_trips_with_digests(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "deep.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "top.txt").write_bytes(b"hello")
    (src / "empty").write_bytes(b"")
    body = b"".join(
        [
            *bytes_member("meta.json", b'{"k": 1}'),
            *tree_members("files", src, chunk=1 << 20),
            *file_member("files/single", src / "top.txt"),
            end_of_archive(),
        ]
    )
    got = extract_stream(
        io.BytesIO(body), _fresh(tmp_path, "out"), meta_names=("meta.json",), max_bytes=1 << 30, max_files=9
    )
    assert got.meta == {"meta.json": b'{"k": 1}'}
    assert sorted(got.files) == ["a/b/deep.bin", "empty", "single", "top.txt"]
    import hashlib

    assert got.files["a/b/deep.bin"] == (
        3 * 1024 * 1024 + 17,
        hashlib.sha256((src / "a" / "b" / "deep.bin").read_bytes()).hexdigest(),
    )
    out = tmp_path / "out"
    assert (out / "a" / "b" / "deep.bin").read_bytes() == (src / "a" / "b" / "deep.bin").read_bytes()
    assert oct(os.stat(out / "top.txt").st_mode & 0o777) == "0o600"
    assert oct(os.stat(out / "a").st_mode & 0o777) == "0o700"


def test_writer_refuses_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real").write_bytes(b"x")
    (src / "ln").symlink_to(src / "real")
    with pytest.raises(InvalidInput, match="symbolic link"):
        b"".join(tree_members("files", src))


def _fresh(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_oversized_extended_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info = _member("files/" + "a" * 100)
    info.pax_headers = {"comment": "x" * (2 << 20)}  # a 2 MiB PAX header: tarfile would buffer it whole
    body = _tar((info, b"x"))
    with pytest.raises(InvalidInput, match="extended header"):
        extract_stream(io.BytesIO(body), _fresh(tmp_path, "pax"), max_bytes=1 << 30, max_files=9)
    long_name = "b" * 120 + "/" + "c" * 120  # over ustar's 100 characters: a PAX path header, accepted
    got = extract_stream(
        io.BytesIO(_tar((_member("files/" + long_name), b"x"))),
        _fresh(tmp_path, "ok"),
        max_bytes=99,
        max_files=9,
    )
    assert list(got.files) == [long_name]
    too_long = _member("files/" + "d" * 300)  # longer than the file system allows: one line, not an OSError
    with pytest.raises(InvalidInput, match="cannot write"):
        extract_stream(
            io.BytesIO(_tar((too_long, b"x"))), _fresh(tmp_path, "long"), max_bytes=99, max_files=9
        )


def _sparse_tar(real: int) -> bytes:
    """A push-shaped tar whose one member claims ``real`` bytes through a PAX GNU sparse map (1 byte sent)."""
    info = tarfile.TarInfo("files/big.bin")
    info.size = 1
    info.pax_headers = {
        "GNU.sparse.map": f"{real - 1},1",
        "GNU.sparse.numblocks": "1",
        "GNU.sparse.size": str(real),
        "GNU.sparse.name": "files/big.bin",
    }
    return _tar((info, b"X"))


def test_sparse_member_amplifies_without_the_defence_and_is_refused_with_it(tmp_path: Path) -> None:
    real = 8 << 20
    body = _sparse_tar(real)
    assert len(body) <= 10240  # tarfile pads to a 10 KiB record
    # without the defence: plain tarfile writes ``real`` bytes from a few KiB of upload
    plain = tmp_path / "plain"
    plain.mkdir()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as t:
        t.extractall(plain, filter="data")
    assert (plain / "files" / "big.bin").stat().st_size == real
    # with it: refused before anything is written, even under a generous byte limit
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(InvalidInput, match="sparse member"):
        extract_stream(io.BytesIO(body), target, max_bytes=1 << 40, max_files=10)
    assert list(target.rglob("*")) == []
    # an adaptive attacker who drops the PAX markers has no sparse map left: the member is its real 1 byte
    info = tarfile.TarInfo("files/big.bin")
    info.size = 1
    got = extract_stream(io.BytesIO(_tar((info, b"X"))), tmp_path / "t", max_bytes=1 << 40, max_files=10)
    assert got.files["big.bin"][0] == 1

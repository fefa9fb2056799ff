"""Stream helpers for the vault's data path: one read of each byte, hashing on a second thread, no copies.

:class:`HashingSink` is a :class:`bastion.crypto.hazmat.SegmentSink`: the AEAD seals (or opens) each segment
straight into a buffer from a small pool, a writer thread writes it to the file and a hasher thread hashes it
(SHA-256 for plaintext, checked against the signed manifest; BLAKE3 for a blob's content address with
``content_address=True``, see :func:`bastion.store.blobs.content_id`), then the buffer goes back to the pool.
Reading and encryption (or decryption), the file write and the hashing of successive segments thus run in
parallel (AES-GCM, ``os.write`` and hashlib all release the GIL, as does blake3 on large updates), and no byte
is copied between them. Memory is bounded by the pool (at most :data:`POOL_BYTES` plus one buffer, whatever
the file size).

:func:`sha256_file` hashes a file the same way (read on the caller's thread, hash on the helper).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import Any, BinaryIO

from bastion.store.blobs import content_hasher, content_id

POOL_BYTES = 16 << 20  # at most this much buffered between the two threads (plus one buffer)
MAX_DEPTH = 8
READ_BUFFER = 1 << 20
WRITEBACK_EVERY = 16 << 20  # ask the kernel to start writing dirty pages back every this many bytes
INLINE_BELOW = 1 << 20  # smaller streams are hashed on the caller's thread (no thread start-up)
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> object | None:
    """libc ``sync_file_range`` (Linux) through ctypes, or None where it is not available."""
    if not hasattr(os, "fsync") or os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start (not wait for) the write-back of a file range, so a later fsync has little left to wait for.

    Purely a performance hint: durability still comes from the fsync the caller makes; errors are ignored.
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


class HashingSink:
    """SHA-256 (or, with ``content_address=True``, the BLAKE3 blob id) of every byte committed, and
    (optionally) the bytes written to the file descriptor ``fd``.

    Three stages run in parallel on successive segments: the caller (reading and sealing or opening a
    segment into a pool buffer), a writer thread (``os.write`` to ``fd``, plus a write-back hint every
    :data:`WRITEBACK_EVERY` bytes) and a hasher thread; a buffer returns to the pool once it has been written
    and hashed, in order. ``inline=True`` does everything on the caller's thread (small streams, where
    starting threads is not worth it). A helper's error is re-raised on the caller's thread by the next call
    or by :meth:`close`.
    """

    def __init__(self, fd: int | None, *, inline: bool = False, content_address: bool = False) -> None:
        self._fd = fd
        self._content_address = content_address
        self._hasher: Any = content_hasher() if content_address else hashlib.sha256()
        self._inline = inline
        self.size = 0
        self._written = 0
        self._unsynced_from = 0
        self._error: BaseException | None = None
        self._closed = False
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._hash_q: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._write_q: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._buffers = 0
        self._depth = 0
        self._buf_size = 0
        self._inline_buf = bytearray(0)
        self._threads: list[threading.Thread] = []
        if not inline:
            self._threads.append(threading.Thread(target=self._hash_run, name="bastion-hash", daemon=True))
            if fd is not None:
                self._threads.append(
                    threading.Thread(target=self._write_run, name="bastion-write", daemon=True)
                )
            for t in self._threads:
                t.start()

    # helper threads
    def _write_out(self, view: memoryview) -> None:
        if self._fd is None:
            return
        _write_all(self._fd, view)
        self._written += len(view)
        if self._written - self._unsynced_from >= WRITEBACK_EVERY:
            start_writeback(self._fd, self._unsynced_from, self._written - self._unsynced_from)
            self._unsynced_from = self._written

    def _write_run(self) -> None:
        while True:
            item = self._write_q.get()
            if item is not None and self._error is None:
                try:
                    self._write_out(memoryview(item[0])[: item[1]])
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            self._hash_q.put(item)
            if item is None:
                return

    def _hash_run(self) -> None:
        while True:
            item = self._hash_q.get()
            if item is None:
                return
            buf, n = item
            if self._error is None:
                try:
                    self._hasher.update(memoryview(buf)[:n])
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            self._free.put(buf)

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    # SegmentSink
    def acquire(self, size: int) -> bytearray:
        """A pool buffer of at least ``size`` bytes (blocks while every buffer is still in flight)."""
        self._raise_pending()
        if self._inline:
            if len(self._inline_buf) < size:
                self._inline_buf = bytearray(size)
            return self._inline_buf
        if self._depth == 0 or size > self._buf_size:
            # first call (or a larger segment than before): size the pool so it stays within POOL_BYTES
            self._buf_size = max(size, self._buf_size)
            self._depth = max(2, min(MAX_DEPTH, POOL_BYTES // max(self._buf_size, 1)))
        while True:
            try:
                buf = self._free.get_nowait()
            except queue.Empty:
                if self._buffers < self._depth:
                    self._buffers += 1
                    return bytearray(self._buf_size)
                buf = self._free.get()
                self._raise_pending()
            if len(buf) >= size:
                return buf
            self._buffers -= 1  # too small for the current segment size: drop it

    def commit(self, buf: bytearray, n: int) -> None:
        """Hand ``buf[:n]`` over: written to the file, then hashed (in this order, segment after segment)."""
        self._raise_pending()
        self.size += n
        if self._inline:
            if self._fd is not None:
                self._write_out(memoryview(buf)[:n])
            self._hasher.update(memoryview(buf)[:n])
        elif self._fd is not None:
            self._write_q.put((buf, n))
        else:
            self._hash_q.put((buf, n))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copying entry point, for small writes (a stream header)."""
        view = memoryview(data).cast("B")
        if not view:
            return 0
        buf = self.acquire(len(view))
        buf[: len(view)] = view
        self.commit(buf, len(view))
        return len(view)

    def flush(self) -> None:
        """Nothing to do: :meth:`close` waits until every byte is written."""

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            if self._threads:
                (self._write_q if self._fd is not None else self._hash_q).put(None)
                for t in self._threads:
                    t.join()

    def close(self) -> str:
        """Wait for the helpers, re-raise their error, and return the hex SHA-256 of everything committed
        (the blob id, ``b3-…``, with ``content_address=True``)."""
        self._stop()
        self._raise_pending()
        if self._content_address:
            return content_id(self._hasher)
        return str(self._hasher.hexdigest())

    def abort(self) -> None:
        self._stop()


def sha256_file(path: Path) -> tuple[str, int]:
    """``(hex SHA-256, size)`` of a file: read on this thread, hashed on a helper (one pass, no copies)."""
    with path.open("rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        sink = HashingSink(None, inline=size < INLINE_BELOW)
        try:
            while True:
                buf = sink.acquire(READ_BUFFER)
                got = _readinto_full(f, memoryview(buf)[:READ_BUFFER])
                if got:
                    sink.commit(buf, got)
                if got < READ_BUFFER:
                    break
        except BaseException:
            sink.abort()
            raise
        return sink.close(), sink.size


def _readinto_full(f: BinaryIO, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        got = f.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


__all__ = ["HashingSink", "sha256_file", "start_writeback"]

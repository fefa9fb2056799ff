"""Small stream helpers: a writer that hashes (and writes) on a second thread, a counting null sink."""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import BinaryIO

_QUEUE_DEPTH = 4  # segments in flight: bounds memory to a few MiB whatever the file size


class ThreadedHashWriter:
    """File-like ``write`` target that SHA-256-hashes the bytes and forwards them to ``sink`` on a thread.

    The encryptor reuses its buffers, so each chunk is copied once; hashing and disk writes then overlap
    with the next segment's encryption or decryption (hashlib and file writes release the GIL).
    """

    def __init__(self, sink: BinaryIO | None) -> None:
        self._sink = sink
        self._hasher = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self.size = 0
        self._thread = threading.Thread(target=self._run, name="bastion-hash-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is not None:
                continue
            try:
                self._hasher.update(chunk)
                if self._sink is not None:
                    self._sink.write(chunk)
            except BaseException as exc:  # re-raised on the caller's thread by close()
                self._error = exc

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._error is not None:
            raise self._error
        chunk = bytes(data)
        self.size += len(chunk)
        self._queue.put(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Nothing to do: bytes reach the sink on :meth:`close`."""

    def close(self) -> str:
        """Wait for the thread, re-raise its error, and return the hex SHA-256 of everything written."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hasher.hexdigest()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()


__all__ = ["ThreadedHashWriter"]

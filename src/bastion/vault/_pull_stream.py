"""Pull as a stream: a verified version's plaintext handed out segment by segment, never written to disk.

:meth:`ArtifactRegistry.pull_stream <bastion.vault.artifacts.ArtifactRegistry.pull_stream>` does every check
local pull does *before* the first byte (permission, pointer and version seals, the signed manifest and the
model-signing bundle against the rows, the wrapped DEK), then :class:`PullStream` yields the files. Each
chunk is one AES-GCM segment that authenticated (index and final flag included) before it is yielded; each
file's size and SHA-256 are compared with the signed manifest after its last chunk, and a mismatch raises
:class:`~bastion.errors.IntegrityError` from the iterator, so a consumer that streams onwards (the server's
pull response) aborts instead of completing. A consumer must therefore stage what it receives and keep it
only once the iteration ended without an error (the remote client also checks every file's size and SHA-256
against the version it received first).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from bastion.crypto.hazmat import decrypt_stream_to
from bastion.errors import BastionError, IntegrityError
from bastion.vault._context import VaultContext
from bastion.vault._records import Records
from bastion.vault.manifest import SIGNATURE_FILE, file_ad
from bastion.vault.refs import ArtifactVersion


@dataclass(frozen=True)
class StreamedFile:
    """One file of a pull stream: its relative path, its signed size and SHA-256, and its chunks."""

    path: str
    size: int
    sha256: str
    chunks: Iterator[memoryview]


class PullStream:
    """A verified version ready to stream (see the module docstring); iterate once for its files.

    ``version`` is what local pull returns, ``signature`` the model-signing bundle (``model.sig``) and
    ``public_key_pem`` the manifest public key (``OUT.pub.pem``). Iteration yields every file local pull
    writes into ``OUT``, ``model.sig`` last. The pull is audit-logged (``registry:pull``) before the first
    plaintext byte is handed out, so a consumer that hangs up after the file it wanted is still on the record;
    how it ended (``registry:pull-end``: complete or aborted, with the plaintext bytes handed out) is logged
    when the iteration ends or is abandoned (a verification failure is also logged as an error).
    """

    def __init__(
        self,
        *,
        ctx: VaultContext,
        records: Records,
        row: Any,
        manifest: dict[str, Any],
        dek: bytes,
        blobs: dict[str, str],
        version: ArtifactVersion,
    ) -> None:
        self._ctx = ctx
        self._records = records
        self._row = row
        self._manifest = manifest
        self._dek = dek
        self._blobs = blobs
        self.version = version
        self.signature = bytes(row.bundle)
        self.public_key_pem = ctx.signer.manifest_public_key_pem().encode("ascii")
        self._started = False
        self._sent = 0

    @property
    def listing(self) -> tuple[tuple[str, int], ...]:
        """``(path, size)`` of every file the iteration yields, in its order (``model.sig`` last)."""
        files = tuple((str(f["path"]), int(f["size"])) for f in self._manifest["files"])
        return (*files, (SIGNATURE_FILE, len(self.signature)))

    @property
    def ref(self) -> str:
        return f"{self._row.name}:{self._row.version}"

    def __iter__(self) -> Iterator[StreamedFile]:
        if self._started:
            raise BastionError("a pull stream can be iterated only once")
        self._started = True
        return self._files()

    def _files(self) -> Iterator[StreamedFile]:
        self._ctx.log("registry:pull", self.ref, env=self._row.env, streamed=True)
        complete = False
        try:
            yield from self._stream()
            complete = True
        finally:  # GeneratorExit (the consumer hung up), an error, or the end: logged either way
            self._ctx.log(
                "registry:pull-end",
                self.ref,
                "ok" if complete else "error",
                env=self._row.env,
                complete=complete,
                plaintext_bytes=self._sent,
            )

    def _stream(self) -> Iterator[StreamedFile]:
        for f in self._manifest["files"]:
            path, size, sha = str(f["path"]), int(f["size"]), str(f["sha256"])
            done = [False]
            chunks = self._chunks(path, size, sha, done)
            yield StreamedFile(path=path, size=size, sha256=sha, chunks=chunks)
            for _ in chunks:  # the consumer skipped (part of) the file: it is still verified
                pass
            if not done[0]:  # its chunks raised (and logged) and the consumer carried on: never a success
                raise IntegrityError(f"{self.ref}: {path} did not verify")
        sig = self.signature
        yield StreamedFile(
            path=SIGNATURE_FILE,
            size=len(sig),
            sha256=hashlib.sha256(sig).hexdigest(),
            chunks=iter([memoryview(sig)]),
        )

    def _chunks(self, path: str, size: int, sha256: str, done: list[bool]) -> Iterator[memoryview]:
        with self._ctx.logged_failure("registry:pull", self.ref):  # a failure mid-stream is logged here
            for chunk in self._verified_chunks(path, size, sha256):
                self._sent += len(chunk)
                yield chunk
        done[0] = True

    def _verified_chunks(self, path: str, size: int, sha256: str) -> Iterator[memoryview]:
        row = self._row
        try:
            blob = self._blobs[path]
        except KeyError:
            raise IntegrityError(f"{self.ref}: {path} has no blob") from None
        pump = _SegmentPump()
        with self._records.open_blob(row, blob) as src:
            ad = file_ad(row, self._manifest, path)

            def run() -> None:
                decrypt_stream_to(key=self._dek, src=src, sink=pump, associated_data=ad)

            worker = threading.Thread(target=pump.run, args=(run,), name="bastion-pull-stream", daemon=True)
            worker.start()
            try:
                yield from pump.drain()
            finally:
                pump.stop()
                worker.join()
        if pump.size != size or pump.hexdigest() != sha256:
            raise IntegrityError(f"{self.ref}: {path} does not match its signed digest")


class _SegmentPump:
    """A :class:`~bastion.crypto.hazmat.SegmentSink` on a helper thread: each segment is opened
    (authenticated) straight into a fresh buffer, hashed, and queued (at most ``depth``) for the consumer;
    no copies."""

    def __init__(self, depth: int = 4) -> None:
        self._q: queue.Queue[memoryview | BaseException | None] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._sha = hashlib.sha256()
        self.size = 0

    # SegmentSink (helper thread)
    def acquire(self, size: int) -> bytearray:
        if self._stopped.is_set():
            raise _Stopped
        return bytearray(size)

    def commit(self, buf: bytearray, n: int) -> None:
        view = memoryview(buf)[:n]
        self._sha.update(view)
        self.size += n
        self._put(view)

    def write(self, data: bytes) -> int:  # pragma: no cover - decrypt_stream_to only uses acquire/commit
        self.commit(bytearray(data), len(data))
        return len(data)

    def _put(self, item: memoryview | BaseException | None) -> None:
        while not self._stopped.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except _Stopped:
            return
        except BaseException as exc:  # handed to the consumer, raised on its thread
            with suppress(_Stopped):
                self._put(exc)
            return
        with suppress(_Stopped):
            self._put(None)

    # consumer
    def drain(self) -> Iterator[memoryview]:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopped.set()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class _Stopped(Exception):
    """The consumer went away: the helper thread stops decrypting."""


__all__ = ["PullStream", "StreamedFile"]

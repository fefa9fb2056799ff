"""The registry: ``/v1/registry/push`` (tar upload), ``/pull`` (tar download), ``/versions``, ``/show``,
``/verify``, ``/promote``, ``/annotate``, ``/annotations``.

Push: the body is a tar stream whose first member ``push.json`` carries the push options and whose other
members live under ``files/``. The options are checked first: a caller who may not push there is refused (by
the Vault's own check, which logs the denial) before the upload is stored. The files are extracted as they
arrive (:func:`bastion.server.tarstream.extract_stream`, bounded queue, constant memory) into a private spool
directory, then handed to ``Vault.push``, which scans, signs and encrypts exactly as in local mode.

Pull: ``Vault.pull_stream`` verifies everything first, then the plaintext streams straight from the
decryption into the response tar (``version.json``, ``pub.pem``, ``files/…``): no spool, no second read.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bastion.access import allowed
from bastion.errors import BastionError, IntegrityError, InvalidInput
from bastion.server.deps import CallerVault, ServerStateDep
from bastion.server.streaming import closing_stream
from bastion.server.tarstream import (
    BLOCK,
    bytes_member,
    end_of_archive,
    extract_stream,
    member_header,
    padding,
)
from bastion.vault import Vault

router = APIRouter()

PUSH_META = "push.json"
_PUSH_KEYS = frozenset(
    {"name", "kind", "env", "classification", "tags", "metadata", "allow_unsafe", "source", "display"}
)


# The extractor reads in pieces below malloc's mmap threshold (heap buffers, reused and warm, instead of a
# fresh page-faulted 1 MiB mapping for each of tarfile's stream-mode joins and slices).
EXTRACT_CHUNK = 64 << 10


class _ChunkQueue:
    """A bounded byte pipe from the event loop (producer) to the extracting thread (``read``).

    The producer hands over batches of the request's body pieces as they arrived (no joining); ``read``
    returns slices of them, so each byte is copied once, into the slice tarfile asked for.
    """

    def __init__(self, depth: int = 8) -> None:
        self._q: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=depth)
        self._pieces: list[bytes] = []
        self._i = 0
        self._pos = 0
        self._eof = False
        self.consumer_done = threading.Event()
        self.aborted = threading.Event()

    def put(self, data: list[bytes] | None) -> None:
        """Blocking put that gives up once the consumer has stopped (so a refused upload cannot hang)."""
        while not self.consumer_done.is_set():
            try:
                self._q.put(data, timeout=0.2)
                return
            except queue.Full:
                continue

    def abort(self) -> None:
        """The request ended early (client gone, upload too large): a waiting ``read`` raises."""
        self.aborted.set()

    def read(self, size: int = -1, /) -> bytes:
        while self._i >= len(self._pieces) and not self._eof:
            try:
                item = self._q.get(timeout=0.2)
            except queue.Empty:
                if self.aborted.is_set():
                    raise InvalidInput("push: the upload ended before the tar stream did") from None
                continue
            if item is None:
                self._eof = True
            else:
                self._pieces, self._i, self._pos = [p for p in item if p], 0, 0
        if self._i >= len(self._pieces):
            return b""
        piece = self._pieces[self._i]
        end = len(piece) if size < 0 else min(len(piece), self._pos + size)
        out = piece if (self._pos == 0 and end == len(piece)) else piece[self._pos : end]
        self._pos = end
        if end == len(piece):
            self._i, self._pos = self._i + 1, 0
        return out


def _push_options(raw: bytes, *, default_env: str) -> dict[str, Any]:
    try:
        opts = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("push.json is not valid JSON") from exc
    if not isinstance(opts, dict) or not set(opts) <= _PUSH_KEYS or not isinstance(opts.get("name"), str):
        raise InvalidInput("push.json: expected an object with name and the push options only")
    if opts.get("source", "dir") not in ("file", "dir"):
        raise InvalidInput("push.json: source must be 'file' or 'dir'")
    for key, kind in (
        ("kind", str),
        ("env", str),
        ("classification", str),
        ("tags", dict),
        ("metadata", dict),
        ("display", str),
    ):
        if opts.get(key) is not None and not isinstance(opts[key], kind):
            raise InvalidInput(f"push.json: {key} has the wrong type")
    if not isinstance(opts.get("allow_unsafe", False), bool):
        raise InvalidInput("push.json: allow_unsafe must be a boolean")
    opts.setdefault("kind", "model")
    return opts


def _push_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k not in ("source", "display")}


def _refuse_early(vault: Vault, opts: dict[str, Any], missing: Path) -> None:
    """Before the upload is stored: a caller who may not push there gets the Vault's own refusal (same
    checks, same audit entry as local mode; ``missing`` does not exist, so nothing could be pushed)."""
    env = opts.get("env") or vault.settings.default_env
    ident = vault.identity
    may = allowed(ident, "registry:push", model=opts["name"], env=env)
    if not may or (opts.get("allow_unsafe") and ident.role != "admin"):
        vault.push(missing, **_push_kwargs(opts))
        raise InvalidInput("push refused")  # pragma: no cover - the Vault raised above


@router.post("/registry/push")
async def push(request: Request, state: ServerStateDep, vault: CallerVault) -> dict[str, Any]:
    spool = state.new_spool()
    files_dir = spool / "files"
    files_dir.mkdir(mode=0o700)
    limits = state.settings
    pipe = _ChunkQueue()
    opts: dict[str, Any] = {}

    def on_meta(name: str, data: bytes) -> None:
        opts.update(_push_options(data, default_env=vault.settings.default_env))
        _refuse_early(vault, opts, spool / "not-uploaded")

    def extract() -> Any:
        try:
            return extract_stream(
                pipe,
                files_dir,
                meta_names=(PUSH_META,),
                max_bytes=limits.max_upload_bytes,
                max_files=limits.max_upload_files,
                on_meta=on_meta,
                chunk=min(EXTRACT_CHUNK, limits.chunk_bytes),
                digests=False,  # Vault.push hashes what it stores
            )
        finally:
            pipe.consumer_done.set()

    loop = asyncio.get_running_loop()
    consumer = loop.run_in_executor(None, extract)
    try:
        pending: list[bytes] = []
        size = received = 0
        cap = limits.max_upload_bytes + 4096 * limits.max_upload_files + (8 << 20)  # the files + tar headers
        async for chunk in request.stream():
            received += len(chunk)
            if received > cap:
                raise InvalidInput(f"push: the upload is larger than {limits.max_upload_bytes} bytes")
            if pipe.consumer_done.is_set():
                continue  # refused or finished: drain the body so the client reads the answer
            pending.append(chunk)
            size += len(chunk)
            if size >= limits.chunk_bytes:
                batch, pending, size = pending, [], 0
                await loop.run_in_executor(None, pipe.put, batch)
        if pending:
            await loop.run_in_executor(None, pipe.put, pending)
        await loop.run_in_executor(None, pipe.put, None)
        extracted = await consumer
        if not opts:
            raise InvalidInput("push: the upload carried no push.json")
        path = files_dir
        if opts.get("source") == "file":
            if len(extracted.files) != 1 or "/" in next(iter(extracted.files)):
                raise InvalidInput("push: a single-file upload must hold exactly one file")
            path = files_dir / next(iter(extracted.files))
        try:
            version = await loop.run_in_executor(None, lambda: vault.push(path, **_push_kwargs(opts)))
        except BastionError as exc:  # name the client's path, not the spool's (which also stays private)
            shown = str(opts.get("display") or path.name)[:4096]
            if str(path) not in str(exc):
                raise
            renamed = type(exc).__new__(type(exc))
            BastionError.__init__(renamed, str(exc).replace(str(path), shown), hint=exc.hint)
            raise renamed from exc
        return dict(version.to_dict())
    finally:
        pipe.abort()  # wakes an extractor still waiting for bytes (a no-op once it finished)
        await asyncio.gather(consumer, return_exceptions=True)
        pipe.consumer_done.set()
        shutil.rmtree(spool, ignore_errors=True)


@router.get("/registry/pull")
def pull(vault: CallerVault, ref: str) -> StreamingResponse:
    """Every check of local pull happens before the answer starts (an error is a JSON answer); the body
    then streams the verified plaintext (:meth:`Vault.pull_stream`) without touching the disk. Its exact
    length is announced, so a stream the server aborts (a segment or a digest that fails to verify
    mid-way) can never look complete to the client."""
    from bastion.server.routers.gateway import refuse_unattested

    refuse_unattested(vault, ref)  # a gateway identity gets plaintext only through attested release
    stream = vault.pull_stream(ref)
    version_json = json.dumps(stream.version.to_dict()).encode("utf-8")
    listing = stream.listing
    heads = [member_header(f"files/{path}", size=size) for path, size in listing]
    sizes = [size for _, size in listing]
    length = (
        sum(
            len(b)
            for b in (
                *bytes_member("version.json", version_json),
                *bytes_member("pub.pem", stream.public_key_pem),
            )
        )
        + sum(len(h) + n + (-n % BLOCK) for h, n in zip(heads, sizes, strict=True))
        + len(end_of_archive())
    )

    def body() -> Generator[bytes | memoryview, None, None]:
        yield from bytes_member("version.json", version_json)
        yield from bytes_member("pub.pem", stream.public_key_pem)
        files = iter(stream)
        try:
            for f, head, (path, size) in zip(files, heads, listing, strict=True):
                if (f.path, f.size) != (path, size):  # pragma: no cover - the stream's own listing
                    raise IntegrityError(f"{stream.ref}: the pull stream left its listing")
                yield head
                yield from f.chunks
                if f.size % BLOCK:
                    yield padding(f.size)
            yield end_of_archive()
        finally:
            close = getattr(files, "close", None)
            if close is not None:
                close()  # the stream logs how it ended (pull-end) now, not when collected

    return StreamingResponse(  # closed on a hang-up: pull-end (incomplete, bytes sent) is logged at once
        closing_stream(body()), media_type="application/x-tar", headers={"Content-Length": str(length)}
    )


@router.get("/registry/versions")
def list_versions(vault: CallerVault, kind: str | None = None) -> list[dict[str, Any]]:
    return [v.to_dict() for v in vault.list(kind)]


@router.get("/registry/show")
def show(vault: CallerVault, ref: str) -> dict[str, Any]:
    return dict(vault.show(ref).to_dict())


class RefBody(BaseModel):
    ref: str = Field(max_length=300)


class PromoteBody(RefBody):
    to: str = Field(max_length=32)


class AnnotateBody(RefBody):
    namespace: str = Field(max_length=64)
    data: dict[str, Any]


@router.post("/registry/verify")
def verify(vault: CallerVault, body: RefBody) -> dict[str, Any]:
    return dict(vault.verify(body.ref).to_dict())


@router.post("/registry/promote")
def promote(vault: CallerVault, body: PromoteBody) -> dict[str, Any]:
    """The promotion gate (``[policy.<env>]`` of the server's bastion.toml) runs here, on the server."""
    from bastion.governance.policy import gate_promotion

    return dict(vault.promote(gate_promotion(vault=vault, ref=body.ref, to=body.to), to=body.to).to_dict())


@router.post("/registry/annotate")
def annotate(vault: CallerVault, body: AnnotateBody) -> dict[str, Any]:
    return dict(vault.annotate(body.ref, namespace=body.namespace, data=body.data).to_dict())


@router.get("/registry/annotations")
def list_annotations(vault: CallerVault, ref: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [a.to_dict() for a in vault.annotations(ref, namespace=namespace)]

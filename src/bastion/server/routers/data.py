"""Data protection on the server: ``/v1/data/protect``, ``/v1/data/reveal``, ``/v1/data/reveal-table``.

The scope keys (tokenization and FF1 keys, wrapped under the key ring) never leave the server: the client
uploads the file, the server protects or reveals it with :mod:`bastion.data.service` exactly as local mode
does (same permission checks — ``data:protect``, ``data:reveal``, ``registry:push`` for ``--push`` — same
audit entries and catalog records, as the caller's identity) and streams the result back.

Uploads are tar streams (:mod:`bastion.server.tarstream`): a small JSON member with the options, then the one
file under ``files/``. The body is spooled to a private directory in bounded chunks (at most the server's
``max_upload_bytes``), so memory stays constant; the permission is checked *before* the body is read, so a
caller who may not protect or reveal is refused (and the refusal logged) without uploading anything.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from bastion.errors import BastionError, InvalidInput
from bastion.server.deps import CallerVault, ServerStateDep
from bastion.server.tarstream import bytes_member, end_of_archive, extract_stream, file_member

router = APIRouter()

PROTECT_META = "protect.json"
REVEAL_META = "reveal.json"
RESULT_META = "result.json"
MAX_TEXT = 64 << 20
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


async def _spool_upload(request: Request, state: Any, spool: Path) -> Path:
    """Write the request body to ``spool/upload.tar`` in bounded chunks (InvalidInput when oversized)."""
    path = spool / "upload.tar"
    limit = state.settings.max_upload_bytes + (1 << 20)  # the tar framing on top of the file
    loop = asyncio.get_running_loop()
    size = 0
    with open(path, "xb") as fh:
        pending: list[bytes] = []
        held = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InvalidInput(f"the upload is larger than the server accepts ({limit} bytes)")
            pending.append(chunk)
            held += len(chunk)
            if held >= state.settings.chunk_bytes:
                data, pending, held = b"".join(pending), [], 0
                await loop.run_in_executor(None, fh.write, data)
        if pending:
            await loop.run_in_executor(None, fh.write, b"".join(pending))
    return path


def _extract_one(upload: Path, target: Path, *, meta: str, state: Any) -> tuple[dict[str, Any], Path]:
    """The options member and the single uploaded file."""
    target.mkdir(mode=0o700)
    with open(upload, "rb") as fh:
        got = extract_stream(
            fh,
            target,
            meta_names=(meta,),
            max_bytes=state.settings.max_upload_bytes,
            max_files=1,
            chunk=state.settings.chunk_bytes,
        )
    upload.unlink()
    try:
        opts = json.loads(got.meta[meta])
    except (KeyError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{meta} is missing or not valid JSON") from exc
    if not isinstance(opts, dict):
        raise InvalidInput(f"{meta}: expected an object")
    if len(got.files) != 1 or "/" in next(iter(got.files)):
        raise InvalidInput("the upload must hold exactly one file")
    return opts, target / next(iter(got.files))


def _str_opt(opts: dict[str, Any], key: str, *, limit: int = 255) -> str | None:
    value = opts.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InvalidInput(f"option {key} must be a string of at most {limit} characters")
    return value


def _local_name(name: str | None, default: str) -> str:
    """A safe file name for the spool that keeps the client's extension (format detection reads it)."""
    suffix = Path(name or "").suffix.lower()
    if not suffix or len(suffix) > 16 or not set(suffix[1:]) <= _NAME_CHARS:
        suffix = ""
    return default + suffix


def _renamed(exc: BastionError, spool: Path, shown: str) -> BastionError:
    """The same error naming the client's file, never the server's spool path."""
    if str(spool) not in str(exc):
        return exc
    out = type(exc).__new__(type(exc))
    BastionError.__init__(out, str(exc).replace(str(spool), shown), hint=exc.hint)
    return out


def _scrubbed(value: Any, spool: Path) -> Any:
    """``value`` with every path under the server's private ``spool`` cut to its file name (a result must
    not reveal the server's home, spool layout or process id)."""
    if isinstance(value, dict):
        return {k: _scrubbed(v, spool) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, spool) for v in value]
    if isinstance(value, str) and str(spool) in value:
        return value.replace(str(spool) + "/", "").replace(str(spool), "")
    return value


def _tar_response(result: dict[str, Any], path: Path | None, spool: Path, chunk: int) -> StreamingResponse:
    def body() -> Any:
        try:
            yield from bytes_member(RESULT_META, json.dumps(result).encode("utf-8"))
            if path is not None:
                yield from file_member(f"files/{path.name}", path, chunk=chunk)
            yield end_of_archive()
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    cleanup = BackgroundTask(shutil.rmtree, spool, ignore_errors=True)
    return StreamingResponse(body(), media_type="application/x-tar", background=cleanup)


@router.post("/data/protect")
async def protect(request: Request, state: ServerStateDep, vault: CallerVault) -> StreamingResponse:
    """Tar in (``protect.json``: name, input_format, env, push, policy TOML text; ``files/NAME``), tar out
    (``result.json``: what local ``data protect --format json`` prints; ``files/OUT``)."""
    from bastion.data import service
    from bastion.data.policy import policy_from_mapping

    vault.access.check(vault.identity, "data:protect")  # before anything is uploaded (logged when denied)
    spool = state.new_spool()
    try:
        upload = await _spool_upload(request, state, spool)
        loop = asyncio.get_running_loop()
        opts, src = await loop.run_in_executor(
            None, lambda: _extract_one(upload, spool / "in", meta=PROTECT_META, state=state)
        )
        name = _str_opt(opts, "name", limit=4096) or src.name
        policy_text = _str_opt(opts, "policy", limit=1 << 20)
        try:
            policy = None if policy_text is None else policy_from_mapping(tomllib.loads(policy_text))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"the policy is not valid TOML ({exc})") from exc
        local = spool / _local_name(name, "input")
        src.rename(local)
        out = spool / _local_name(_str_opt(opts, "out_name", limit=4096) or name, "protected")
        fmt = _str_opt(opts, "input_format", limit=16)
        push, env = _str_opt(opts, "push"), _str_opt(opts, "env", limit=32)
        try:
            outcome = await loop.run_in_executor(
                None,
                lambda: service.protect(
                    vault, path=local, out=out, policy=policy, fmt=fmt, push=push, env=env
                ),
            )
        except BastionError as exc:
            raise _renamed(exc, spool, name) from exc
        result = _scrubbed(outcome.to_dict(), spool)
        result["input"] = name
        result["output"] = _str_opt(opts, "out_name", limit=4096) or out.name  # the client's name, not ours
        return _tar_response(result, out, spool, state.settings.chunk_bytes)
    except BaseException:
        shutil.rmtree(spool, ignore_errors=True)
        raise


@router.post("/data/reveal-table")
async def reveal_table(request: Request, state: ServerStateDep, vault: CallerVault) -> dict[str, Any]:
    """Tar in (``reveal.json``: scope, env, name; ``files/NAME``, a protected CSV); JSON out: the rows."""
    from bastion.data import service

    vault.access.check(vault.identity, "data:reveal")  # before anything is uploaded (logged when denied)
    with state.spool() as spool:
        upload = await _spool_upload(request, state, spool)
        loop = asyncio.get_running_loop()
        opts, src = await loop.run_in_executor(
            None, lambda: _extract_one(upload, spool / "in", meta=REVEAL_META, state=state)
        )
        name = _str_opt(opts, "name", limit=4096) or src.name
        scope = _str_opt(opts, "scope") or "default"
        env = _str_opt(opts, "env", limit=32)
        try:
            rows, count, done, missing = await loop.run_in_executor(
                None, lambda: service.reveal_table(vault, scope=scope, path=src, env=env)
            )
        except BastionError as exc:
            raise _renamed(exc, spool, name) from exc
    return {"rows": rows, "revealed": count, "fpe_columns": done, "not_revealed": missing}


class RevealBody(BaseModel):
    scope: str = Field("default", max_length=255)
    tokens: list[str] = Field(default_factory=list, max_length=1_000_000)
    text: str | None = Field(None, max_length=MAX_TEXT)
    fpe: bool = False
    env: str | None = Field(None, max_length=32)


@router.post("/data/reveal")
def reveal(vault: CallerVault, body: RevealBody) -> dict[str, Any]:
    """Tokens or FF1 values (or every token inside ``text``) → the revealed values."""
    from bastion.data import service

    result = service.reveal(
        vault, scope=body.scope, tokens=tuple(body.tokens), text=body.text, fpe=body.fpe, env=body.env
    )
    return {"values": list(result.values), "revealed": result.revealed, "scope": result.scope}


__all__ = ["router"]

"""Data protection and the privacy ledger through a ``bastion server`` (the remote side of ``bastion data
protect|reveal`` and ``bastion privacy budget set|show`` with ``BASTION_URL``).

The functions take a :class:`~bastion.client.RemoteVault` where :mod:`bastion.data.service` takes a local
Vault, and return the same shapes, so the CLI prints the same lines and JSON in both modes. The file goes to
the server in a streamed tar (constant memory), the server protects or reveals it with keys this machine never
sees, and the result is written here atomically (a private temporary beside ``out``, then renamed).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import IntegrityError, InvalidInput, ServiceError


def _transport(vault: Any) -> Any:
    transport = getattr(vault, "_t", None)
    if transport is None:
        raise ServiceError("not a remote vault")
    return transport


def _upload(meta_name: str, options: Mapping[str, Any], path: Path) -> Iterator[bytes]:
    from bastion.server.tarstream import bytes_member, end_of_archive, file_member

    yield from bytes_member(meta_name, json.dumps(dict(options)).encode("utf-8"))
    yield from file_member(f"files/{path.name}", path)
    yield end_of_archive()


@contextmanager
def _post_stream(t: Any, path: str, body: Iterator[bytes]) -> Iterator[Any]:
    """POST a streamed tar and hand out the streamed answer (errors raised as the server named them)."""
    from bastion.client._http import STREAM_TIMEOUT, raise_for

    headers = {"Content-Type": "application/x-tar"}
    with (
        t._errors(),
        t._client.stream("POST", path, content=body, headers=headers, timeout=STREAM_TIMEOUT) as resp,
    ):
        if not resp.is_success:
            resp.read()
            raise_for(resp)
        yield resp


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}")
    return p


# --- protect ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteColumnPlan:
    name: str
    action: Any  # bastion.data.policy.Action
    entity: str | None
    kind: str
    label: str


@dataclass(frozen=True)
class RemoteProtectResult:
    """What the CLI reads of a :class:`bastion.data.protect.ProtectResult`, rebuilt from the server's JSON."""

    output: str
    rows: int
    token_scope: str
    plan: tuple[RemoteColumnPlan, ...]
    undetected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RemotePushed:
    name: str
    version: int


@dataclass(frozen=True)
class RemoteProtectOutcome:
    result: RemoteProtectResult
    pushed: RemotePushed | None
    raw: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


def _outcome(raw: dict[str, Any], out: Path) -> RemoteProtectOutcome:
    from bastion.data.policy import Action

    try:
        raw["output"] = str(out)
        plan = tuple(
            RemoteColumnPlan(
                name=str(p["column"]),
                action=Action(p["action"]),
                entity=p.get("entity"),
                kind=str(p["kind"]),
                label=str(p["label"]),
            )
            for p in raw["plan"]
        )
        undetected = {
            str(p["column"]): int(p["cells_without_detection"])
            for p in raw["plan"]
            if "cells_without_detection" in p
        }
        result = RemoteProtectResult(
            output=str(out),
            rows=int(raw["rows"]),
            token_scope=str(raw["token_scope"]),
            plan=plan,
            undetected=undetected,
        )
        pushed = raw.get("pushed")
        return RemoteProtectOutcome(
            result=result,
            pushed=None
            if not pushed
            else RemotePushed(name=str(pushed["name"]), version=int(pushed["version"])),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceError("the server sent a malformed protect result") from exc


def protect(
    vault: Any,
    *,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    policy_file: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    push: str | None = None,
    env: str | None = None,
) -> RemoteProtectOutcome:
    """Protect ``path`` on the server into ``out`` here (``data:protect``, ``registry:push`` to push)."""
    from bastion.client._http import ResponseReader
    from bastion.client._staging import staging
    from bastion.server.tarstream import CHUNK, extract_stream

    src, target = _check_file(path), Path(out).absolute()
    policy_text = None
    if policy_file is not None:
        try:
            policy_text = Path(policy_file).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise InvalidInput(f"no such policy file: {policy_file}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the policy file {policy_file}") from exc
    options = {
        "name": src.name,
        "out_name": target.name,
        "input_format": fmt,
        "push": push,
        "env": env,
        "policy": policy_text,
    }
    t = _transport(vault)
    with staging(
        target.parent / f".{target.name}.bastion-{secrets.token_hex(6)}",
        cannot_write=f"cannot write {target}",
        malformed="the server sent a malformed protect stream",
    ) as stage:
        with _post_stream(t, "/data/protect", _upload("protect.json", options, src)) as resp:
            got = extract_stream(
                ResponseReader(resp, CHUNK),
                stage,
                meta_names=("result.json",),
                max_bytes=1 << 50,
                max_files=1,
            )
        if len(got.files) != 1:
            raise IntegrityError("the server sent a malformed protect stream")
        raw = json.loads(got.meta["result.json"])
        produced = stage / next(iter(got.files))
        digest = got.files[produced.name][1]
        if str(raw.get("output_digest", "")).removeprefix("sha256:") != digest:
            raise IntegrityError("the protected file does not match the digest the server reported")
        os.replace(produced, target)
    return _outcome(raw, target)


# --- reveal ----------------------------------------------------------------------------------------------


def reveal(
    vault: Any,
    *,
    scope: str,
    tokens: Sequence[str] = (),
    text: str | None = None,
    fpe: bool = False,
    env: str | None = None,
) -> Any:
    """Reveal tokens, FF1 values, or every token inside ``text`` on the server (``data:reveal``)."""
    from bastion.data.service import RevealResult

    body = {"scope": scope, "tokens": list(tokens), "text": text, "fpe": fpe, "env": env}
    got = _transport(vault).call("POST", "/data/reveal", json=body)
    try:
        return RevealResult(
            values=tuple(str(v) for v in got["values"]),
            revealed=int(got["revealed"]),
            scope=str(got["scope"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceError("the server sent a malformed reveal result") from exc


def reveal_table(
    vault: Any, *, scope: str, path: str | os.PathLike[str], env: str | None = None
) -> tuple[list[list[str]], int, list[str], list[str]]:
    """Reveal a protected CSV on the server; the same tuple as :func:`bastion.data.service.reveal_table`."""
    src = _check_file(path)
    options = {"name": src.name, "scope": scope, "env": env}
    got = _transport(vault).upload("/data/reveal-table", _upload("reveal.json", options, src))
    try:
        rows = [[str(c) for c in row] for row in got["rows"]]
        return rows, int(got["revealed"]), list(got["fpe_columns"]), list(got["not_revealed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceError("the server sent a malformed reveal result") from exc


# --- the privacy ledger ----------------------------------------------------------------------------------


def _status(d: Mapping[str, Any]) -> Any:
    from bastion.privacy.ledger import BudgetStatus, Spend

    try:
        spends = tuple(
            Spend(
                spend_id=str(s["spend_id"]),
                dataset=str(d["dataset"]),
                kind=str(s["kind"]),
                status=str(s["status"]),
                epsilon=float(s["epsilon"]),
                delta=float(s["delta"]),
                epsilon_planned=float(s["epsilon_planned"]),
                delta_planned=float(s["delta"]),
                actor=str(s["actor"]),
                created_at=str(s["created_at"]),
                details=dict(s.get("details") or {}),
            )
            for s in d["spends"]
        )
        return BudgetStatus(
            dataset=str(d["dataset"]),
            label=d.get("label"),
            epsilon_budget=float(d["epsilon_budget"]),
            delta_budget=float(d["delta_budget"]),
            epsilon_spent=float(d["epsilon_spent"]),
            delta_spent=float(d["delta_spent"]),
            spends=spends,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceError("the server sent a malformed budget") from exc


class RemoteLedger:
    """The server's privacy ledger as the token's identity: what the CLI uses of ``PrivacyLedger``."""

    def __init__(self, vault: Any) -> None:
        self._t = _transport(vault)

    def set_budget(self, dataset: str, *, epsilon: float, delta: float, label: str | None = None) -> Any:
        body = {"dataset": dataset, "epsilon": epsilon, "delta": delta, "label": label}
        return _status(self._t.call("POST", "/privacy/budget", json=body))

    def status(self, dataset: str) -> Any:
        return _status(self._t.call("GET", "/privacy/budget", params={"dataset": dataset}))

    def statuses(self) -> list[Any]:
        return [_status(d) for d in self._t.call("GET", "/privacy/budgets")]

    def datasets(self) -> list[str]:
        return [s.dataset for s in self.statuses()]


__all__ = ["RemoteLedger", "RemoteProtectOutcome", "protect", "reveal", "reveal_table"]

"""Data operations as a project member: permission check, catalog, lineage event and audit entry for each.

``scan`` needs ``data:scan``, ``protect`` needs ``data:protect`` (and ``registry:push`` with ``push=``),
``reveal`` needs ``data:reveal``. Each writes one audit-log entry (never with raw values) and scan / protect /
push each record one OpenLineage run event.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.data.catalog import record_classification, scope_keys
from bastion.data.io import DEFAULT_CHUNK_ROWS, detect_format
from bastion.data.policy import Policy, load_policy
from bastion.data.protect import ProtectResult, protect_file, reveal_text, reveal_value
from bastion.data.scan import ScanReport, scan_file
from bastion.errors import BastionError, ConfigError, CryptoError, InvalidInput
from bastion.store.lineage import FILE_NAMESPACE, REGISTRY_NAMESPACE, LineageDataset, record_run

if TYPE_CHECKING:
    from bastion.vault import ArtifactVersion, Vault


def _settings(vault: Vault, policy: Policy | None) -> tuple[Policy, int]:
    """The policy (argument, else ``[data] policy`` / ``token_scope`` of bastion.toml) and ``chunk_rows``."""
    section = vault.settings.section("data")
    chunk_rows = section.get("chunk_rows", DEFAULT_CHUNK_ROWS)
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ConfigError("[data] chunk_rows must be a positive integer")
    if policy is None:
        path = section.get("policy")
        if path is not None and not Path(path).is_absolute():
            path = vault.settings.home / path
        policy = load_policy(path, token_scope=section.get("token_scope"))
    return policy, chunk_rows


def _file_ds(path: str | Path, digest: str) -> LineageDataset:
    return LineageDataset(FILE_NAMESPACE, str(Path(path).resolve()), digest)


def scan(
    vault: Vault,
    *,
    path: str | Path,
    fmt: str | None = None,
    policy: Policy | None = None,
    use_presidio: bool = True,
) -> ScanReport:
    """Scan ``path``, store its classification in the catalog, record lineage and audit."""
    vault.access.check(vault.identity, "data:scan")
    pol, chunk_rows = _settings(vault, policy)
    report = scan_file(path=path, fmt=fmt, policy=pol, use_presidio=use_presidio, chunk_rows=chunk_rows)
    record_classification(vault.engine, report, actor=vault.identity.name, sealer=vault.context.sealer)
    record_run(
        vault.engine,
        job="data.scan",
        inputs=[_file_ds(report.path, report.digest)],
        facets={
            "bastion_scan": {
                "label": report.label.value,
                "rows": report.rows,
                "entities": report.entity_counts(),
            }
        },
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="data:scan",
        target=Path(report.path).name,
        outcome="ok",
        details={"label": report.label.value, "rows": report.rows, "digest": report.digest},
    )
    return report


@dataclass(frozen=True)
class ProtectOutcome:
    result: ProtectResult
    pushed: ArtifactVersion | None

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict()
        if self.pushed is not None:
            out["pushed"] = {"name": self.pushed.name, "version": self.pushed.version}
        return out


def protect(
    vault: Vault,
    *,
    path: str | Path,
    out: str | Path,
    policy: Policy | None = None,
    fmt: str | None = None,
    push: str | None = None,
    env: str | None = None,
    use_presidio: bool = True,
) -> ProtectOutcome:
    """Protect ``path`` into ``out`` with the scope's data key; optionally push ``out`` as a dataset."""
    pol, chunk_rows = _settings(vault, policy)
    env = env or vault.settings.default_env
    vault.access.check(vault.identity, "data:protect")
    if push:
        vault.access.check(vault.identity, "registry:push", model=push, env=env)
    detect_format(Path(path), fmt)
    keys = scope_keys(vault.engine, vault.keys, scope=pol.token_scope, env=env, actor=vault.identity.name)
    try:
        result = protect_file(
            path=path,
            out=out,
            keys=keys,
            policy=pol,
            fmt=fmt,
            use_presidio=use_presidio,
            chunk_rows=chunk_rows,
        )
    except BastionError as exc:
        vault.audit.append(
            actor=vault.identity.name,
            action="data:protect",
            target=Path(path).name,
            outcome="error",
            details={"error": type(exc).__name__},
        )
        raise
    record_classification(vault.engine, result.report, actor=vault.identity.name, sealer=vault.context.sealer)
    record_run(
        vault.engine,
        job="data.protect",
        inputs=[_file_ds(result.input, result.input_digest)],
        outputs=[_file_ds(result.output, result.output_digest)],
        facets={
            "bastion_protect": {
                "token_scope": result.token_scope,
                "rows": result.rows,
                "actions": {p.name: p.action.value for p in result.plan},
            }
        },
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="data:protect",
        target=Path(result.output).name,
        outcome="ok",
        details={
            "input_digest": result.input_digest,
            "output_digest": result.output_digest,
            "token_scope": result.token_scope,
            "rows": result.rows,
        },
    )
    pushed = None
    if push:
        pushed = vault.push(
            result.output,
            name=push,
            kind="dataset",
            env=env,
            classification=result.report.label.value,
            metadata={"protected_from": result.input_digest, "token_scope": result.token_scope},
        )
        record_run(
            vault.engine,
            job="registry.push",
            inputs=[_file_ds(result.output, result.output_digest)],
            outputs=[
                LineageDataset(REGISTRY_NAMESPACE, f"{pushed.name}:{pushed.version}", result.output_digest)
            ],
            facets={"bastion_push": {"kind": "dataset", "env": env}},
        )
    return ProtectOutcome(result=result, pushed=pushed)


@dataclass(frozen=True)
class RevealResult:
    values: tuple[str, ...]
    revealed: int
    scope: str


def reveal(
    vault: Vault,
    *,
    scope: str,
    tokens: list[str] | tuple[str, ...] = (),
    text: str | None = None,
    fpe: bool = False,
    env: str | None = None,
) -> RevealResult:
    """Detokenize ``tokens`` (or every token inside ``text``). Needs ``data:reveal``; audit-logged."""
    vault.access.check(vault.identity, "data:reveal")
    if not tokens and text is None:
        raise InvalidInput("give tokens to reveal, or a file")
    env = env or vault.settings.default_env
    try:
        keys = scope_keys(
            vault.engine, vault.keys, scope=scope, env=env, actor=vault.identity.name, create=False
        )
        if text is not None:
            revealed_text, count = reveal_text(text, keys=keys)
            values: tuple[str, ...] = (revealed_text,)
        else:
            values = tuple(reveal_value(t, keys=keys, fpe=fpe) for t in tokens)
            count = len(values)
    except (CryptoError, BastionError) as exc:
        vault.audit.append(
            actor=vault.identity.name,
            action="data:reveal",
            target=scope,
            outcome="error",
            details={"error": type(exc).__name__},
        )
        raise
    vault.audit.append(
        actor=vault.identity.name, action="data:reveal", target=scope, outcome="ok", details={"count": count}
    )
    return RevealResult(values=values, revealed=count, scope=scope)


def reversible_columns(vault: Vault, *, digest: str) -> dict[str, str] | None:
    """Column -> action of the ``protect`` run that wrote the file with ``digest`` (``None``: no such run)."""
    from bastion.store.lineage import list_events

    for event in reversed(list_events(vault.engine, job="data.protect")):
        if any(o.digest == digest for o in event.outputs):
            actions = (event.facets.get("bastion_protect") or {}).get("actions") or {}
            return {str(k): str(v) for k, v in actions.items()}
    return None


def reveal_table(
    vault: Vault, *, scope: str, path: str | Path, env: str | None = None
) -> tuple[list[list[str]], int, list[str], list[str]]:
    """Reveal a protected CSV: every token in every cell, and the FF1 columns its ``protect`` run wrote.

    Returns (rows with the header first, values revealed, FPE columns revealed, FPE columns *not* revealed —
    when no protect run is recorded for the file's digest, ``["?"]``: it cannot say which columns hold FF1).
    A value that does not reveal (a tampered token, another scope's token) raises :class:`CryptoError`
    naming its row and column, never the value.
    """
    import csv

    from bastion.data.io import sha256_file
    from bastion.data.tokens import TOKEN_RE

    vault.access.check(vault.identity, "data:reveal")
    p = Path(path)
    keys = scope_keys(
        vault.engine, vault.keys, scope=scope, env=env or vault.settings.default_env, create=False
    )
    actions = reversible_columns(vault, digest=sha256_file(p))
    with p.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0] if rows else []
    fpe_cols = [c for c, a in (actions or {}).items() if a == "fpe"]
    idx = {c: header.index(c) for c in fpe_cols if c in header}
    missing = [c for c in fpe_cols if c not in idx] if actions is not None else ["?"]
    count = 0

    def sub(m: Any) -> str:
        nonlocal count
        count += 1
        return keys.reveal(m.group())

    try:
        for i, row in enumerate(rows[1:], start=1):
            for j, cell in enumerate(row):
                try:
                    if j in idx.values() and cell:
                        row[j] = keys.fpe_reveal(cell)
                        count += 1
                    elif "tok_" in cell:
                        row[j] = TOKEN_RE.sub(sub, cell)
                except CryptoError as exc:
                    # Name the cell (never its value): a tampered token, or one of another scope. The
                    # caller writes nothing: a file revealed in part would look whole.
                    column = header[j] if j < len(header) else str(j + 1)
                    raise CryptoError(
                        f"{p.name} row {i}, column {column!r}: a value does not reveal under scope {scope!r} "
                        "(tampered, or protected under another scope)"
                    ) from exc
    except (CryptoError, BastionError) as exc:
        vault.audit.append(
            actor=vault.identity.name, action="data:reveal", target=scope, outcome="error",
            details={"error": type(exc).__name__},
        )  # fmt: skip
        raise
    vault.audit.append(
        actor=vault.identity.name, action="data:reveal", target=scope, outcome="ok", details={"count": count}
    )
    return rows, count, sorted(idx), missing


__all__ = [
    "ProtectOutcome",
    "RevealResult",
    "protect",
    "reveal",
    "reveal_table",
    "reversible_columns",
    "scan",
]

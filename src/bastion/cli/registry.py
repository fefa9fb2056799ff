"""``bastion registry push|pull|list|show|verify|promote|gc``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import (
    FORMAT_OPTION,
    HOME_OPTION,
    OutputFormat,
    emit,
    is_remote,
    local_only,
    open_vault,
    vault_answer,
)
from bastion.errors import InvalidInput


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


def _line(v: Any) -> str:
    return f"{v.name}:{v.version}\t{v.kind}\t{v.env}\t{v.size} bytes\t{v.created_at}\t{v.created_by}"


def _show_lines(v: Any) -> Iterator[str]:
    yield _line(v)
    yield f"manifest {v.manifest_digest}"
    for f in v.files:
        yield f"  {f.sha256}  {f.size:>12}  {f.path}"
    for k, val in sorted(v.tags.items()):
        yield f"  tag {k}={val}"
    for a in v.annotations:
        yield f"  annotation [{a.namespace}] by {a.created_by} at {a.created_at}: {json.dumps(dict(a.data))}"


def register(app: typer.Typer) -> None:
    registry = typer.Typer(help="The encrypted, signed, versioned registry.", no_args_is_help=True)
    app.add_typer(registry, name="registry")

    @registry.command("push")
    def push(
        path: Path = typer.Argument(..., help="A file or a directory."),
        name: str = typer.Option(..., "--name", help="Artifact name."),
        kind: str = typer.Option("model", "--kind", help="model or dataset."),
        env: str | None = typer.Option(None, "--env", help="Environment (default: the project's)."),
        classification: str | None = typer.Option(
            None, "--classification", help="Data classification label."
        ),
        tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable."),
        metadata: str | None = typer.Option(
            None, "--metadata", help="A JSON object stored with the version."
        ),
        allow_unsafe: bool = typer.Option(
            False, "--allow-unsafe", help="Push without artifact inspection (admin only, audit-logged)."
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Push PATH as a new immutable version of NAME."""
        meta = None
        if metadata is not None:
            try:
                meta = json.loads(metadata)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
                raise InvalidInput("--metadata must be a JSON object (nested at most 32 deep)") from exc
            if not isinstance(meta, dict):
                raise InvalidInput("--metadata must be a JSON object")
        from bastion.cli._progress import interactive, step

        show = interactive(json_output=fmt is OutputFormat.json)
        with open_vault(home) as vault, step(f"scanning, signing and encrypting {path.name}", enabled=show):
            version = vault.push(
                path,
                name=name,
                kind=kind,
                env=env,
                classification=classification,
                tags=_parse_tags(tag),
                metadata=meta,
                allow_unsafe=allow_unsafe,
            )
            if getattr(vault, "engine", None) is not None:  # a remote server records its own lineage
                from bastion.vault.lineage import path_dataset, record_artifact_run, version_dataset

                record_artifact_run(
                    vault,
                    job="registry.push",
                    inputs=[path_dataset(path, version=version)],
                    outputs=[version_dataset(version)],
                    facets={"bastion_push": {"kind": version.kind, "env": version.env}},
                )
        emit(fmt, version, lambda v: [f"pushed {v.ref} ({v.env}, manifest {v.manifest_digest[:16]}…)"])

    @registry.command("pull")
    def pull(
        ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ENV."),
        out: Path = typer.Option(..., "--out", help="Directory to create (must not exist or be empty)."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Verify, decrypt and write a version to --out (nothing is written unless everything verifies)."""
        from bastion.cli._progress import interactive, step

        show = interactive(json_output=fmt is OutputFormat.json)
        with open_vault(home) as vault, step(f"verifying and decrypting {ref}", enabled=show):
            version = vault.pull(ref, out=out)
        emit(fmt, version, lambda v: [f"pulled {v.ref} into {out} (verified)"])

    @registry.command("list")
    def list_(
        kind: str | None = typer.Option(None, "--kind", help="Only models or only datasets."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """List the versions you may read."""
        vault_answer(home, fmt, lambda vault: vault.list(kind), lambda found: map(_line, found))

    @registry.command("show")
    def show(
        ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ENV."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Show one version: files, digests, tags, annotations."""
        vault_answer(home, fmt, lambda vault: vault.show(ref), _show_lines)

    @registry.command("verify")
    def verify(
        ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ENV."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Check signatures, database rows, the wrapped key and every blob (exit 1 on tampering)."""
        vault_answer(
            home,
            fmt,
            lambda vault: vault.verify(ref),
            lambda v: [f"{v.ref}: OK ({len(v.files)} files, manifest {v.manifest_digest[:16]}…)"],
            as_json=lambda v: {"ok": True, "version": v},
        )

    @registry.command("promote")
    def promote(
        ref: str = typer.Argument(..., help="NAME:VERSION."),
        to: str = typer.Option(..., "--to", help="staging or prod."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Promote a version (its data key is rewrapped under the target environment's KEK).

        Where bastion.toml has a [policy.<env>] table for the target, the version must pass it first
        (the same rules as 'bastion check --env'); a violation exits 1 and nothing is promoted."""
        from bastion.governance.policy import gate_promotion

        with open_vault(home) as vault:
            if is_remote(vault):  # a server runs the gate itself, with its own bastion.toml
                v = vault.promote(ref, to=to)
            else:
                v = vault.promote(gate_promotion(vault=vault, ref=ref, to=to), to=to)
        emit(fmt, v, lambda v: [f"promoted {v.ref} to {v.env}"])

    @registry.command("gc")
    def gc(
        yes: bool = typer.Option(False, "--yes", help="Delete them (without it, only list what would go)."),
        min_age_hours: float = typer.Option(
            24.0,
            "--min-age-hours",
            min=0.0,
            help="Grace period: younger blobs are kept (make it exceed any push).",
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Collect orphan blobs (admin only): blobs no version refers to, left by crashed or refused pushes.

        A dry run by default (lists what would be deleted); --yes deletes. Audit-logged either way."""
        with open_vault(home) as vault:
            local_only(
                vault, "registry gc needs the blob store: run it on the server's host, without BASTION_URL"
            )
            found = vault.gc_blobs(dry_run=not yes, min_age_s=min_age_hours * 3600.0)

        def lines(found: Any) -> Iterator[str]:
            verb = "would delete" if found.dry_run else "deleted"
            yield (
                f"{verb} {len(found.orphans)} orphan blob(s) ({found.bytes} bytes) and {found.temporaries} "
                f"temporary file(s); kept {found.recent} younger than {min_age_hours:g} h"
            )
            if found.dry_run and (found.orphans or found.temporaries):
                yield "run again with --yes to delete them"

        emit(fmt, found, lines)

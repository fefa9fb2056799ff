"""``bastion log verify|prove|head|consistency|show``: the tamper-evident audit log."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import (
    FORMAT_OPTION,
    HOME_OPTION,
    OutputFormat,
    is_remote,
    local_only,
    open_vault,
    print_json,
    vault_answer,
)
from bastion.errors import IntegrityError, InvalidInput, ServiceError

WITNESS_ENV = "BASTION_WITNESS"


def parse_witness_specs(specs: Sequence[str], *, home: Path) -> list[Any]:
    """Witnesses named from outside the home: ``FILE`` (an append-only heads file) or
    ``URL,key=PEM[,ca=PEM]`` (a ``bastion witness`` service and its public key)."""
    from bastion.respond.rollback import witnesses_from_specs

    return witnesses_from_specs(specs, home=home)


def register(app: typer.Typer) -> None:
    log = typer.Typer(help="The Merkle audit log.", no_args_is_help=True)
    app.add_typer(log, name="log")

    @log.command("verify")
    def verify(
        trusted_head: Path | None = typer.Option(
            None, "--trusted-head", help="A signed head saved earlier (`bastion log head --format json`)."
        ),
        witness: list[str] | None = typer.Option(
            None,
            "--witness",
            help="A witness to check besides the home's [[log.witness]]: FILE or URL,key=PEM[,ca=PEM] "
            f"(repeatable; also ${WITNESS_ENV}, whitespace-separated). Name it from outside the home.",
        ),
        require_witness: bool = typer.Option(
            False, "--require-witness", help="Exit 1 when no witness is configured, reachable or has a head."
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Recompute every leaf and root and check them against the signed tree heads (exit 1 if tampered)."""
        from bastion.store.auditlog import SignedTreeHead

        trusted = None
        if trusted_head is not None:
            try:
                trusted = SignedTreeHead.from_dict(json.loads(trusted_head.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"cannot read {trusted_head}: {exc}") from exc
        specs = list(witness or []) + re.split(r"\s+", os.environ.get(WITNESS_ENV, "").strip())
        specs = [s for s in specs if s]
        with open_vault(home) as vault:
            extra: list[Any] = []
            if specs:
                local_only(
                    vault,
                    "--witness/$BASTION_WITNESS: run log verify on the server's host",
                    error=InvalidInput,
                )
                extra = parse_witness_specs(specs, home=vault.settings.home)
            try:
                result = vault.log_verify(trusted=trusted, **({"witnesses": extra} if extra else {}))
            except ServiceError as exc:
                if require_witness:  # an unreachable witness is a finding when one is required
                    raise IntegrityError(f"{exc} (--require-witness)") from exc
                raise
            if require_witness and not any(w.size for w in result.witnesses):
                raise IntegrityError(
                    "no witness has seen this log (--require-witness): name one with --witness or "
                    f"${WITNESS_ENV}, from outside the home"
                )
            if not is_remote(vault):  # a server runs this check in its own log verify
                from bastion.privacy.ledger import ledger_for_vault  # a replayed ledger lost a logged spend

                ledger_for_vault(vault).cross_check_log(vault.log_entries())
        witnessed = max((w.size for w in result.witnesses), default=0)
        if fmt is OutputFormat.json:
            print_json({"ok": True, "witnessed": bool(result.witnesses), **result.to_dict()})
            return
        typer.echo(f"audit log consistent: {result.size} entries, root {result.root_hash.hex()}")
        if not result.witnesses:
            typer.echo(
                "UNWITNESSED: no [[log.witness]] is configured, so whoever holds this home and its "
                "passphrase could truncate or rewrite the log undetected (name the witness from outside "
                f"the home: --witness or ${WITNESS_ENV}; --require-witness exits 1 here)"
            )
            return
        for w in result.witnesses:
            typer.echo(f"witness {w.witness}: {w.size} entries seen, consistent ({w.heads} head(s) checked)")
        if witnessed < result.size:
            typer.echo(f"{result.size - witnessed} newest entries are not witnessed yet")

    @log.command("key")
    def key(home: Path | None = HOME_OPTION) -> None:
        """Print the log's Ed25519 public key (pin it in a witness: `bastion witness init --log-key`)."""
        with open_vault(home) as vault:
            typer.echo(vault.log_public_key_pem(), nl=False)

    @log.command("head")
    def head(home: Path | None = HOME_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        """Print the latest signed tree head."""
        vault_answer(
            home,
            fmt,
            lambda vault: vault.log_head(),
            lambda sth: [f"size {sth.size} root {sth.root_hash.hex()} at {sth.timestamp}"],
        )

    @log.command("prove")
    def prove(
        index: int = typer.Argument(..., help="Entry index (0-based)."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Inclusion proof of entry N in the latest signed head (verified before printing)."""

        def lines(proof: Any) -> Iterator[str]:
            root = proof.root_hash.hex()
            yield f"entry {proof.index} is in the tree of size {proof.tree_size} (root {root})"
            yield f"leaf {proof.leaf_hash.hex()}"
            yield from (f"  {p.hex()}" for p in proof.path)

        vault_answer(home, fmt, lambda vault: vault.log_prove(index), lines)

    @log.command("consistency")
    def consistency(
        old: int = typer.Argument(..., help="Older tree size."),
        new: int = typer.Argument(..., help="Newer tree size."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Prove the tree of OLD entries is a prefix of the tree of NEW entries (signed heads checked)."""
        vault_answer(
            home,
            fmt,
            lambda vault: vault.log_consistency(old, new),
            lambda proof: [f"consistent: {proof.old_size} -> {proof.new_size} ({len(proof.path)} hashes)"],
        )

    @log.command("show")
    def show(
        start: int = typer.Option(0, "--start", help="First index."),
        limit: int = typer.Option(50, "--limit", help="How many entries."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Print audit entries."""
        vault_answer(
            home,
            fmt,
            lambda vault: vault.log_entries(start=start, limit=limit),
            lambda entries: (
                f"{e.index}\t{e.timestamp}\t{e.actor}\t{e.action}\t{e.target}\t{e.outcome}" for e in entries
            ),
        )

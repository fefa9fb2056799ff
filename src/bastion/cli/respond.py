"""``bastion respond``: run a playbook over the hunt's findings, once or as a service (``--watch``).

Exit codes: 0 nothing to do or every action done, 1 actions planned/declined/failed/refused (findings left
open; refused: the finding's events do not match the signed audit log),
2 usage or runtime error (also when the audit log does not verify: nothing is acted on, nothing consumed).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from bastion.cli import EXIT_FINDING
from bastion.cli._common import (
    FORMAT_OPTION,
    HOME_OPTION,
    REQUIRE_WITNESS_OPTION,
    WITNESS_OPTION,
    OutputFormat,
    open_vault,
    outside_witnesses,
    print_json,
)
from bastion.cli.events import SINCE_HELP, open_store, parse_since
from bastion.errors import InvalidInput


def _has_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def _line(r: Any) -> str:
    return f"{r.status:<8} {r.action:<17} {r.target:<24} {r.rule_id[:40]} {r.detail}"


def register(app: typer.Typer) -> None:
    @app.command("respond")
    def respond_command(
        playbook: Path | None = typer.Option(
            None, "--playbook", help="Playbook TOML (default: the packaged one)."
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Plan only (the default)."),
        approve: bool = typer.Option(False, "--approve", help="Ask before each action."),
        auto: bool = typer.Option(
            False, "--auto", help="Act without asking (rules with mode=approve still ask)."
        ),
        watch: bool = typer.Option(
            False, "--watch", help="Run as a service: collect, hunt and act every second."
        ),
        interval: float = typer.Option(1.0, "--interval", help="Seconds between watch ticks."),
        no_anomaly: bool = typer.Option(
            False,
            "--no-anomaly",
            help="Rules only: no anomaly score (with --watch it runs every minute in the background).",
        ),
        undo: str | None = typer.Option(
            None, "--undo", help="Lift ACTION:TARGET (block-client:10.0.0.9, …)."
        ),
        restore_state: bool = typer.Option(
            False,
            "--restore-state",
            help="Rewrite a missing or rolled-back response state from the latest one the audit log records.",
        ),
        pending: bool = typer.Option(
            False, "--pending", help="List the approvals --watch (or a run without a terminal) queued."
        ),
        approve_pending: str | None = typer.Option(
            None, "--approve-pending", help="Act on the queued proposal ID (its evidence is checked first)."
        ),
        decline_pending: str | None = typer.Option(
            None, "--decline-pending", help="Drop the queued proposal ID (logged)."
        ),
        since: str | None = typer.Option(None, "--since", help=SINCE_HELP),
        witness: list[str] | None = WITNESS_OPTION,
        require_witness: bool = REQUIRE_WITNESS_OPTION,
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Map findings to actions (revoke tokens, disable identities, block/throttle clients, quarantine
        models, rotate keys, guard block mode), each audit-logged with its finding.

        With --watch, or without a terminal to ask, approve-mode actions are queued (status ``pending``):
        --pending lists them, --approve-pending/--decline-pending ID settles one.

        Exit codes: 0 nothing left to do, 1 actions planned, declined, pending, refused or failed, 2 usage
        or runtime error.
        """
        outside_witnesses(witness, require_witness, home)
        from bastion.hunt import hunt, load_rules, verifier_for
        from bastion.respond import Responder, load_playbook
        from bastion.respond import watch as watch_loop
        from bastion.respond.pending import PendingQueue
        from bastion.respond.state import STATE_DIR

        if sum((dry_run, approve, auto)) > 1:
            raise InvalidInput("choose one of --dry-run, --approve, --auto")
        mode = "auto" if auto else "approve" if approve else "dry-run"
        book = load_playbook(playbook)

        def ask(planned: Any) -> bool:
            f = planned.finding
            return typer.confirm(
                f"{planned.action} {planned.target} (finding: {f.title}, {f.identity}/{f.client})?"
            )

        with open_vault(home) as vault:
            queue = PendingQueue(vault.settings.home / STATE_DIR)
            interactive = not watch and _has_terminal()  # a service (or a pipe) has no one to ask
            from bastion.serve.config import load_gateway_config

            # the gateway's trusted proxies (bastion.toml [serve.connections]) are never blocked automatically
            proxies = load_gateway_config(section=vault.settings.section("serve")).connections.trusted_proxies
            responder = Responder(
                vault=vault,
                playbook=book,
                mode=mode,
                approve=ask if interactive else None,
                pending=queue,
                trusted=proxies,
            )
            if pending:
                items = queue.list()
                if fmt is OutputFormat.json:
                    print_json({"pending": items})
                for item in items if fmt is not OutputFormat.json else ():
                    f = item.get("finding", {})
                    typer.echo(
                        f"{item.get('id')}  {item.get('action'):<17} {item.get('target'):<24} "
                        f"{f.get('title', '')} ({f.get('identity', '-')}/{f.get('client', '-')})"
                    )
                if not items and fmt is not OutputFormat.json:
                    typer.echo("no pending proposals")
                return
            if approve_pending is not None or decline_pending is not None:
                ident = approve_pending if approve_pending is not None else decline_pending
                store = open_store(vault)
                try:
                    result = responder.settle_pending(
                        str(ident), approve=approve_pending is not None, events=store
                    )
                finally:
                    store.close()
                typer.echo(_line(result))
                if result.status != "done" and approve_pending is not None:
                    raise typer.Exit(EXIT_FINDING)
                return
            if restore_state:
                restored = responder.restore_state()
                typer.echo(f"response state restored from the audit log (serial {restored.serial}):")
                for section in (
                    "blocked_identities",
                    "blocked_clients",
                    "throttled_clients",
                    "quarantined_models",
                ):
                    entries = getattr(restored, section)
                    typer.echo(f"  {section}: {', '.join(sorted(entries)) or '-'}")
                typer.echo(f"  guard_mode: {restored.guard_mode or '-'}")
                return
            if undo is not None:
                action, _, target = undo.partition(":")
                result = responder.undo(action=action, target=target)
                typer.echo(f"undone {result.action} {result.target}")
                return
            if watch:
                from bastion.events import EventStore

                stop = threading.Event()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: stop.set())
                watch_store = EventStore.for_home(vault.settings.home)
                typer.echo(f"watching ({mode}); Ctrl-C to stop", err=True)

                def _print_tick(t: Any) -> None:
                    if t.results:
                        typer.echo("\n".join(_line(r) for r in t.results))
                    if (
                        t.error
                    ):  # e.g. the audit log does not verify: nothing is acted on until it is repaired
                        typer.echo(f"error: {t.error}", err=True)

                try:
                    taken = watch_loop(
                        responder=responder,
                        store=watch_store,
                        rules=load_rules(),
                        interval_s=interval,
                        anomaly=not no_anomaly,
                        stop=stop,
                        on_tick=_print_tick,
                    )
                finally:
                    watch_store.close()
                typer.echo(f"stopped; {taken} actions taken", err=True)
                return
            store = open_store(vault)
            try:
                report = hunt(
                    store=store,
                    since=parse_since(since),
                    anomaly=not no_anomaly,
                    verify=verifier_for(vault, store),
                )
                results = responder.respond(report.findings, events=store)
            finally:
                store.close()
        if fmt is OutputFormat.json:
            print_json({"mode": mode, "results": [r.to_dict() for r in results]})
        else:
            for r in results:
                typer.echo(_line(r))
            if not results:
                typer.echo("nothing to do")
        if any(r.status in ("planned", "declined", "failed", "refused", "pending") for r in results):
            raise typer.Exit(EXIT_FINDING)

"""``bastion events collect|export``: the security event store (audit log, gateway and guard events)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bastion.cli._common import HOME_OPTION, open_vault
from bastion.errors import InvalidInput

if TYPE_CHECKING:
    from bastion.events import EventStore

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SINCE_HELP = "Only events from this time on: an age (30m, 24h, 7d) or an ISO 8601 time."


class ExportFormat(enum.StrEnum):
    jsonl = "jsonl"
    ocsf = "ocsf"


def parse_since(value: str | None, *, now: float | None = None) -> float | None:
    """``30m``/``24h``/``7d`` before now, or an ISO time (UTC when no zone is given), as unix seconds."""
    if value is None:
        return None
    match = _AGO.match(value.strip())
    if match:
        return (now if now is not None else time.time()) - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"--since: expected an age like 24h or an ISO time, got {value!r}") from exc
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def open_store(vault: Any) -> EventStore:
    """The home's event store, brought up to date with the audit log."""
    from bastion.events import EventStore, collect_audit

    store = EventStore.for_home(vault.settings.home)
    collect_audit(vault, store)
    return store


def register(app: typer.Typer) -> None:
    events = typer.Typer(
        help="Security events (audit log, gateway, guard) for hunting and SIEMs.", no_args_is_help=True
    )
    app.add_typer(events, name="events")

    @events.command("export")
    def export(
        since: str | None = typer.Option(None, "--since", help=SINCE_HELP),
        fmt: ExportFormat = typer.Option(
            ExportFormat.jsonl, "--format", help="jsonl (bastion's schema) or ocsf."
        ),
        out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Collect new audit-log entries into the event store, then print the events as JSON lines."""
        from bastion.governance.threat import atlas_techniques

        start = parse_since(since)
        with open_vault(home) as vault:
            store = open_store(vault)
            rows = store.events(since=start)
            store.close()
        names = dict(atlas_techniques()) if fmt is ExportFormat.ocsf else {}
        lines = (
            json.dumps(e.to_ocsf(technique_names=names), sort_keys=True)
            if fmt is ExportFormat.ocsf
            else e.to_jsonl()
            for e in rows
        )
        if out is None:
            for line in lines:
                typer.echo(line)
            return
        try:
            with out.open("w", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(line + "\n")
        except OSError as exc:
            raise InvalidInput(f"cannot write {out} ({exc.strerror})") from exc
        typer.echo(f"{len(rows)} events written to {out}", err=True)

    @events.command("collect")
    def collect(home: Path | None = HOME_OPTION) -> None:
        """Read new audit-log entries into the event store (incremental)."""
        from bastion.events import EventStore, collect_audit

        with open_vault(home) as vault:
            store = EventStore.for_home(vault.settings.home)
            read = collect_audit(vault, store)
            total = store.count()
            store.close()
        typer.echo(f"{read} new audit-log entries read; {total} events stored")

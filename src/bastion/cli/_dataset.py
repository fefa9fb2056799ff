"""``bastion data scan|protect|risk DIR --engine local|dask [--cluster ADDRESS]``: a partitioned dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli._common import OutputFormat, print_json

if TYPE_CHECKING:
    from bastion.data import RiskReport

ENGINE_OPTION = typer.Option(
    None, "--engine", help="local (process pool), dask or spark; a directory runs on local by default."
)
CLUSTER_OPTION = typer.Option(
    None, "--cluster", help="Dask scheduler address or Spark master URL (default: a local cluster)."
)
WORKERS_OPTION = typer.Option(None, "--workers", min=1, help="Worker processes of a local pool or cluster.")


def scan_dataset_command(
    *,
    path: Path,
    engine: str | None,
    cluster: str | None,
    workers: int | None,
    policy: Path | None,
    input_format: str | None,
    use_presidio: bool,
    fmt: OutputFormat,
) -> None:
    from bastion.cli.data import _print_scan
    from bastion.compute import make_executor, scan_dataset
    from bastion.data import load_policy

    pol = load_policy(policy) if policy is not None else None
    with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
        result = scan_dataset(
            path=path, executor=executor, fmt=input_format, policy=pol, use_presidio=use_presidio
        )
    if fmt is OutputFormat.json:
        print_json({**result.to_dict(), "recorded": False})
        return
    _print_scan(result.report, recorded=True)
    typer.echo(f"{len(result.partitions)} partitions on the {engine or 'local'} engine")
    typer.echo("(dataset scans are not recorded in the catalog yet)")


def protect_dataset_command(
    *,
    path: Path,
    out: Path,
    engine: str | None,
    cluster: str | None,
    workers: int | None,
    policy: Path | None,
    env: str | None,
    input_format: str | None,
    home: Path | None,
    fmt: OutputFormat,
) -> None:
    from bastion.cli._common import open_vault
    from bastion.compute import make_executor, protect_dataset
    from bastion.data import load_policy
    from bastion.errors import InvalidInput

    pol = load_policy(policy) if policy is not None else None
    with open_vault(home) as vault:
        if getattr(vault, "remote", False):
            raise InvalidInput(
                "a partitioned dataset is protected with a local project (--engine), not a server"
            )
        with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
            result = protect_dataset(
                vault, path=path, out=out, executor=executor, policy=pol, fmt=input_format, env=env
            )
    if fmt is OutputFormat.json:
        print_json(result.to_dict())
        return
    typer.echo(
        f"protected {result.rows} rows in {len(result.partitions)} partitions -> {result.output} "
        f"(token scope {result.token_scope!r}, {result.engine} engine, {result.resumed} resumed)"
    )
    for p in result.plan:
        typer.echo(f"  {p.name}: {p.label} ({p.kind}) -> {p.action.value}")


def risk_dataset_command(
    *,
    path: Path,
    engine: str | None,
    cluster: str | None,
    workers: int | None,
    quasi_identifiers: list[str],
    sensitive: str | None,
    k: int,
    input_format: str | None,
) -> RiskReport:
    from bastion.compute import make_executor, risk_dataset

    with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
        return risk_dataset(
            path=path,
            quasi_identifiers=quasi_identifiers,
            sensitive=sensitive,
            k=k,
            fmt=input_format,
            executor=executor,
        )

"""``bastion data scan DIR --engine local|dask [--cluster ADDRESS]``: a partitioned dataset, scaled out."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import OutputFormat, print_json

ENGINE_OPTION = typer.Option(
    None, "--engine", help="local (process pool) or dask; a directory is scanned with local by default."
)
CLUSTER_OPTION = typer.Option(None, "--cluster", help="Dask scheduler address (default: a local cluster).")
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

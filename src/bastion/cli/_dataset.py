"""``bastion data scan|protect|risk DIR|URL --engine local|dask|spark [--cluster ADDRESS]``: datasets.

DIR may be an object-store URL (``s3://bucket/prefix``; credentials and ``AWS_ENDPOINT_URL`` from the
standard AWS environment chain), and so may protect's ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli._common import OutputFormat, print_json
from bastion.errors import InvalidInput

if TYPE_CHECKING:
    from bastion.data import RiskReport

ENGINE_OPTION = typer.Option(
    None, "--engine", help="local (process pool), dask or spark; a directory runs on local by default."
)
CLUSTER_OPTION = typer.Option(
    None, "--cluster", help="Dask scheduler address or Spark master URL (default: a local cluster)."
)
WORKERS_OPTION = typer.Option(None, "--workers", min=1, help="Worker processes of a local pool or cluster.")


def is_dataset(path: Path) -> bool:
    """A partitioned dataset: a local directory or an object-store URL (``s3://bucket/prefix``)."""
    from bastion.compute.objects import as_url

    return path.is_dir() or as_url(path) is not None


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
    home: Path | None = None,
) -> None:
    from bastion.cli._common import open_vault
    from bastion.cli.data import _has_project, _print_scan
    from bastion.compute import make_executor, scan_dataset
    from bastion.compute.record import scan_dataset_recorded
    from bastion.data import load_policy

    recorded = _has_project(home)
    pol = load_policy(policy) if policy is not None else None
    args = {"path": path, "fmt": input_format, "policy": pol, "use_presidio": use_presidio}
    with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
        if recorded:
            with open_vault(home) as vault:
                if getattr(vault, "remote", False):
                    raise InvalidInput("a partitioned dataset is scanned with a local project, not a server")
                result = scan_dataset_recorded(vault, executor=executor, **args)
        else:
            result = scan_dataset(executor=executor, **args)  # type: ignore[arg-type]
    if fmt is OutputFormat.json:
        print_json({**result.to_dict(), "recorded": recorded})
        return
    _print_scan(result.report, recorded=recorded)
    typer.echo(f"{len(result.partitions)} partitions on the {engine or 'local'} engine")


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

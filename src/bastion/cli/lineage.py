"""``bastion lineage NAME[:VERSION]``: the graph from an artifact back to its raw sources."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from bastion.cli._common import HOME_OPTION, open_vault, print_json


class LineageFormat(enum.StrEnum):
    text = "text"
    openlineage = "openlineage"
    json = "json"


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    def lineage(
        ref: str = typer.Argument(
            ..., help="NAME or NAME:VERSION of a registry artifact (or a recorded dataset name)."
        ),
        namespace: str = typer.Option("bastion-registry", "--namespace", help="Dataset namespace of REF."),
        fmt: LineageFormat = typer.Option(LineageFormat.text, "--format", help="text, openlineage or json."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Print the lineage of REF; --format openlineage exports the run events as JSON."""
        from bastion.store.lineage import render_tree
        from bastion.vault.lineage import lineage

        with open_vault(home) as vault:
            graph = lineage(vault=vault, ref=ref, namespace=namespace)
        root = graph.root
        if fmt is LineageFormat.text:
            typer.echo(render_tree(graph))
        elif fmt is LineageFormat.openlineage:
            print_json(graph.to_openlineage())
        else:
            print_json(
                {
                    "root": {"namespace": root.namespace, "name": root.name, "digest": root.digest},
                    "sources": [
                        {"namespace": s.namespace, "name": s.name, "digest": s.digest} for s in graph.sources
                    ],
                    "events": graph.to_openlineage(),
                }
            )

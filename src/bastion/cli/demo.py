"""``bastion demo [--out DIR]``: the whole lifecycle on built-in data, with progress shown."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(
            Path("bastion-demo"), "--out", help="A new directory for the demo's home and report."
        ),
        epochs: int = typer.Option(4, "--epochs", help="DP-SGD epochs (more: better accuracy, slower)."),
    ) -> None:
        """Protect PII, train with DP and a watermark, scan/sign/push, audit, gate, promote, serve, attack the
        gateway, hunt and respond, then write OUT/index.html linking every report (a few minutes)."""
        from bastion.cli._progress import interactive, progress
        from bastion.demo import run_demo

        with progress(enabled=interactive()) as update:
            run = run_demo(out=out, update=update, epochs=epochs)
        typer.echo(f"demo finished: open {run.out / 'index.html'}")

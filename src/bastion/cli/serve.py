"""``bastion serve MODEL_REF``: the secure gateway (OIP v2 over TLS), or its hardened k8s manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
from bastion.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model_ref: str = typer.Argument(..., help="Model to serve: NAME, NAME:VERSION or NAME@ENV."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        port: int = typer.Option(8080, "--port", help="Port to bind."),
        workers: int = typer.Option(1, "--workers", help="Worker processes (above 1 needs --redis)."),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        redis: str | None = typer.Option(
            None, "--redis", help="Redis URL for shared rate limits and monitor."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="Gateway settings (TOML with a [serve] table)."
        ),
        insecure: bool = typer.Option(
            False, "--insecure", help="Plain HTTP; allowed only on a loopback address."
        ),
        deployment: str | None = typer.Option(
            None, "--deployment", help="Print a hardened deployment manifest instead of serving ('k8s')."
        ),
        image: str = typer.Option(
            "bastion-ml:latest",
            "--image",
            help="Container image for --deployment; pin a digest (NAME@sha256:…) or check-deploy flags it.",
        ),
        check: bool = typer.Option(
            False,
            "--check",
            help="Verify, release the key, scan and load the model, then exit without serving.",
        ),
        approve: bool = typer.Option(
            False,
            "--approve",
            help="Approve this gateway configuration for the model's key release (admin), then exit.",
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Serve a verified registry model behind authentication, rate limits and the extraction monitor."""
        from bastion.serve.server import ServeOptions, approve_gateway, build_gateway, check_options, run

        options = ServeOptions(
            model_ref=model_ref,
            host=host,
            port=port,
            workers=workers,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            redis_url=redis,
            config_file=str(config) if config else None,
            insecure=insecure,
            home=str(home) if home else None,
        )
        if deployment is not None:
            from bastion.serve.k8s import manifest, render

            if deployment != "k8s":
                raise ConfigError(f"unknown deployment target {deployment!r} (supported: k8s)")
            objects = manifest(  # replicas share limits only through Redis: one replica without it
                model_ref=model_ref,
                image=image,
                redis_port=6379 if redis else None,
                replicas=2 if redis else 1,
            )
            if fmt is OutputFormat.json:
                print_json(objects)
            else:
                typer.echo(render(objects), nl=False)
            return
        check_options(options)
        if approve:
            entry = approve_gateway(options)
            if fmt is OutputFormat.json:
                print_json({"model": model_ref, "config_digest": entry.config_digest, "approved": True})
            else:
                typer.echo(f"key release approved for {model_ref} with config {entry.config_digest[:16]}…")
            return
        if check:
            gateway = build_gateway(options)
            model = gateway.model
            gateway.close()
            summary = {"model": model.name, "version": model.version, "digest": model.digest, "ready": True}
            if fmt is OutputFormat.json:
                print_json(summary)
            else:
                typer.echo(f"{model.name}:{model.version} verified, key released, scanned and loaded")
            return
        run(options, announce=lambda url: typer.echo(f"bastion gateway for {model_ref} on {url}", err=True))

"""``bastion witness init|serve|key``: a service outside the home that countersigns the audit log's heads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.errors import ConfigError, InvalidInput

DIR_OPTION = typer.Option(..., "--dir", help="The witness's own directory (not inside any bastion home).")


def register(app: typer.Typer) -> None:
    witness = typer.Typer(help="Witness the audit log from outside the home.", no_args_is_help=True)
    app.add_typer(witness, name="witness")

    @witness.command("init")
    def init(
        directory: Path = DIR_OPTION,
        log_key: Path = typer.Option(..., "--log-key", help="The log's public key (`bastion log key`)."),
    ) -> None:
        """Pin the log's public key and create this witness's countersigning key; prints its public key."""
        from bastion.witness.service import WitnessService

        try:
            pem = log_key.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {log_key}") from exc
        service = WitnessService.init(directory, log_public_key_pem=pem)
        typer.echo(service.public_key_pem(), nl=False)

    @witness.command("key")
    def key(directory: Path = DIR_OPTION) -> None:
        """Print the witness's public key (pin it as `key` in the home's [[log.witness]])."""
        from bastion.witness.service import WitnessService

        typer.echo(WitnessService.open(directory).public_key_pem(), nl=False)

    @witness.command("serve")
    def serve(
        directory: Path = DIR_OPTION,
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8444, "--port"),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        insecure: bool = typer.Option(
            False, "--insecure", help="Plain HTTP; allowed only on a loopback address."
        ),
    ) -> None:
        """Serve the witness over HTTPS (a self-signed certificate in DIR/tls when none is given)."""
        import uvicorn

        from bastion.serve.config import ConnectionsConfig
        from bastion.serve.connections import proxy_options
        from bastion.serve.tls import check_pair, is_loopback, self_signed_certificate
        from bastion.witness.app import create_app
        from bastion.witness.service import WitnessService

        if insecure and not is_loopback(host):
            raise ConfigError("--insecure (plain HTTP) is allowed only on a loopback address")
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if insecure and tls_cert:
            raise ConfigError("--insecure and --tls-cert exclude each other")
        service = WitnessService.open(directory)
        ssl: dict[str, Any] = {}
        if not insecure:
            if tls_cert and tls_key:
                check_pair(tls_cert, tls_key)
                cert, keyf = tls_cert, tls_key
            else:
                cert, keyf = self_signed_certificate(
                    directory / "tls", hosts=("localhost", "127.0.0.1", host)
                )
            ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(keyf)}
        scheme = "http" if insecure else "https"
        typer.echo(f"witness on {scheme}://{host}:{port}", err=True)
        proxy = proxy_options(ConnectionsConfig())  # X-Forwarded-For never names the client
        uvicorn.run(
            create_app(service), host=host, port=port, log_level="warning", access_log=False, **ssl, **proxy
        )

"""``bastion server``: the control plane over HTTPS (the only process that opens the key ring and the DB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import HOME_OPTION, REQUIRE_WITNESS_OPTION, WITNESS_OPTION, outside_witnesses
from bastion.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("server")
    def server(
        home: Path | None = HOME_OPTION,
        witness: list[str] | None = WITNESS_OPTION,
        require_witness: bool = REQUIRE_WITNESS_OPTION,
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8443, "--port", help="Port to listen on."),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        insecure: bool = typer.Option(
            False, "--insecure", help="Plain HTTP; allowed only on a loopback address."
        ),
        max_upload_gib: float | None = typer.Option(
            None,
            "--max-upload-gib",
            help="Largest upload accepted (default: [server] max_upload_bytes in bastion.toml, else 64 GiB).",
        ),
    ) -> None:
        """Serve the project's registry, access, tokens, keys and log to token holders (team mode).

        Opens the home with $BASTION_PASSPHRASE (or a prompt); clients then need only BASTION_URL and a
        token. HTTPS by default (a self-signed certificate in HOME/tls when none is given: clients trust it
        with --ca HOME/tls/gateway-cert.pem or BASTION_CA)."""
        import uvicorn

        from bastion.config import home_path
        from bastion.serve.config import ConnectionsConfig
        from bastion.serve.connections import proxy_options
        from bastion.serve.tls import check_pair, is_loopback, self_signed_certificate
        from bastion.server.app import create_server_app
        from bastion.server.state import ServerSettings

        outside_witnesses(witness, require_witness, home)
        if insecure and not is_loopback(host):
            raise ConfigError("--insecure (plain HTTP) is allowed only on a loopback address")
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if insecure and tls_cert:
            raise ConfigError("--insecure and --tls-cert exclude each other")
        if max_upload_gib is not None and not 0 < max_upload_gib < 1 << 20:
            raise ConfigError("--max-upload-gib must be positive")
        ssl: dict[str, Any] = {}
        if not insecure:
            if tls_cert and tls_key:
                check_pair(tls_cert, tls_key)
                cert, key = tls_cert, tls_key
            else:
                cert, key = self_signed_certificate(
                    home_path(home) / "tls", hosts=("localhost", "127.0.0.1", host)
                )
            ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        settings = (
            None if max_upload_gib is None else ServerSettings(max_upload_bytes=int(max_upload_gib * 2**30))
        )
        app_ = create_server_app(home=home, settings=settings)
        scheme = "http" if insecure else "https"
        typer.echo(f"bastion server on {scheme}://{host}:{port}", err=True)
        # X-Forwarded-For never names the client (uvicorn trusts it from 127.0.0.1 by default)
        proxy = proxy_options(ConnectionsConfig())
        uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False, **ssl, **proxy)

"""Binding and serving for ``bastion serve`` (start-up step 5 of :mod:`bastion.serve.server`): the TLS files,
the listening socket (a port in use is a :class:`~bastion.errors.ServiceError`, exit 2) and one uvicorn
process serving a built gateway."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.config import home_path
from bastion.errors import ConfigError, ServiceError
from bastion.serve.app import create_app
from bastion.serve.tls import check_pair, self_signed_certificate


def tls_files(options: Any) -> tuple[str, str] | None:
    if options.insecure:
        return None
    if options.tls_cert and options.tls_key:
        cert, key = Path(options.tls_cert), Path(options.tls_key)
        check_pair(cert, key)
        return str(cert), str(key)
    cert, key = self_signed_certificate(home_path(options.home) / "serve", hosts=("localhost", "127.0.0.1"))
    return str(cert), str(key)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or ServiceError (exit 2) — e.g. when the port is already in use."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _uvicorn_common(options: Any, tls: tuple[str, str] | None) -> dict[str, Any]:
    common: dict[str, Any] = {
        "access_log": False,
        "log_level": "warning",
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": 5,
    }
    if tls is not None:
        common.update(ssl_certfile=tls[0], ssl_keyfile=tls[1])
    return common


def serve_gateway(
    gateway: Any, options: Any, tls: Any, *, announce: Callable[[str], None] | None = None
) -> None:
    """One process: load uvicorn's config (TLS, protocols) and bind, then announce and serve ``gateway``
    until interrupted; the gateway is closed on the way out, also when loading or binding fails."""
    import uvicorn

    from bastion.serve.connections import uvicorn_options

    try:
        config = uvicorn.Config(
            create_app(gateway),
            **_uvicorn_common(options, tls),
            **uvicorn_options(gateway.config.connections),
        )
        config.load()  # TLS context and protocol classes: fail here, before announcing
        sock = bind(options.host, options.port)
    except BaseException:
        gateway.close()
        raise
    if announce is not None:
        announce(f"{'https' if tls is not None else 'http'}://{options.host}:{options.port}")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        gateway.close()


def _check_tls(config: Any) -> None:
    """Build the TLS context once in the parent (workers build their own) so bad files fail before serving."""
    if config.is_ssl:
        from uvicorn.config import create_ssl_context

        try:
            create_ssl_context(
                keyfile=config.ssl_keyfile,
                certfile=config.ssl_certfile,
                password=None,
                ssl_version=config.ssl_version,
                cert_reqs=config.ssl_cert_reqs,
                ca_certs=None,
                ciphers=config.ssl_ciphers,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the TLS certificate or key does not load: {exc}") from exc


__all__ = ["bind", "serve_gateway", "tls_files"]

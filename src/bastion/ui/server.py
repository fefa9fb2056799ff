"""``bastion ui``: run the dashboard over TLS (like the gateway), or plain HTTP on a loopback address only.

The process holds the project passphrase (it opens a vault per session as that session's identity); each
session's vault is closed at logout, expiry or shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError

UI_DIR = "ui"  # the self-signed certificate's directory under the home


@dataclass(frozen=True)
class UIOptions:
    home: str | None = None
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure: bool = False
    reports: tuple[str, ...] = ()
    idle_s: float = 900.0


def check_options(options: UIOptions) -> None:
    from bastion.serve.tls import check_pair, is_loopback

    if options.insecure and not is_loopback(options.host):
        raise ConfigError("--insecure (plain HTTP) is allowed only on a loopback address")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if options.insecure and options.tls_cert:
        raise ConfigError("--insecure and --tls-cert exclude each other")
    if options.tls_cert and options.tls_key:
        check_pair(Path(options.tls_cert), Path(options.tls_key))
    if not 0 <= options.port < 65536:
        raise ConfigError("--port must lie in 0..65535 (0: any free port)")
    for r in options.reports:
        if not Path(r).is_dir():
            raise ConfigError(f"--reports: not a directory: {r}")


def tls_files(options: UIOptions, home: Path) -> tuple[str, str] | None:
    from bastion.serve.tls import self_signed_certificate

    if options.insecure:
        return None
    if options.tls_cert and options.tls_key:
        return options.tls_cert, options.tls_key
    cert, key = self_signed_certificate(home / UI_DIR, hosts=("localhost", "127.0.0.1"))
    return str(cert), str(key)


def hunting_pages() -> Mapping[str, Callable[[Any], Mapping[str, Any]]]:
    """The hunting page's data source (findings and response actions), when bastion.hunt is installed."""
    try:
        from bastion.ui.hunting import hunt_context
    except ImportError:
        return {}
    from bastion.ui.cache import Throttled

    return {"hunt": Throttled(hunt_context)}  # a hunt at most every 30 s, whoever reloads the page


def build(options: UIOptions, *, passphrase: str | None = None) -> tuple[Any, Any, Path]:
    """(app, sessions, home): opens the owner's vault once to check the passphrase and authenticate logins."""
    from bastion.access import AccessControl
    from bastion.config import get_passphrase
    from bastion.server.state import SPRAY_FAILURES, FailureLog, QuietFailures
    from bastion.ui.app import create_app
    from bastion.ui.cache import VerifyCache
    from bastion.ui.sessions import Sessions
    from bastion.vault import open_vault

    check_options(options)
    secret = passphrase if passphrase is not None else get_passphrase()
    owner = open_vault(home=options.home, passphrase=secret)
    home = owner.settings.home

    # failed logins are audit-logged in aggregate per client address (as the server does): the token check
    # itself appends nothing for a plain failure; FailureLog writes the first of a window, the count at the
    # spray threshold and the rest at the window's end, each naming the address
    quiet = AccessControl(owner.engine, QuietFailures(owner.audit), sealer=owner.access.sealer)  # type: ignore[arg-type]
    failures = FailureLog(owner.audit, write_at=SPRAY_FAILURES)
    failures.start_timer()

    def authenticate(token: str) -> Any:
        return quiet.authenticate(token)

    verify_cache = VerifyCache()  # the log verified once per signed head (and minute), not per page view

    def session_vault(token: str) -> Any:
        return verify_cache.wrap(open_vault(home=home, passphrase=secret, token=token))

    sessions = Sessions(
        authenticate=authenticate, open_vault=session_vault, idle_s=options.idle_s, on_failure=failures.failed
    )
    secure = not options.insecure
    app = create_app(
        sessions=sessions,
        secure=secure,
        reports=tuple(Path(r) for r in options.reports),
        extra=hunting_pages(),
        on_shutdown=(failures.close, owner.close),
    )
    return app, sessions, home


def run(options: UIOptions, *, announce: Callable[[str], None] | None = None) -> None:
    """Build, bind (port 0: any free port, announced), then serve until interrupted."""
    import uvicorn

    from bastion.serve.config import ConnectionsConfig
    from bastion.serve.connections import proxy_options
    from bastion.serve.server import bind

    app, sessions, home = build(options)
    tls = tls_files(options, home)
    config: dict[str, Any] = {"access_log": False, "log_level": "warning", "server_header": False}
    config.update(proxy_options(ConnectionsConfig()))  # X-Forwarded-For never names the client
    if tls is not None:
        config.update(ssl_certfile=tls[0], ssl_keyfile=tls[1])
    try:
        server_config = uvicorn.Config(app, **config)
        server_config.load()  # the TLS context: fail here, before announcing
        sock = bind(options.host, options.port)
    except BaseException:
        sessions.close()
        raise
    port = sock.getsockname()[1]
    if announce is not None:
        announce(f"{'https' if tls else 'http'}://{options.host}:{port}")
    try:
        uvicorn.Server(server_config).run(sockets=[sock])
    finally:
        sock.close()
        sessions.close()


__all__ = ["UIOptions", "build", "check_options", "run", "tls_files"]

"""A real uvicorn server on 127.0.0.1:<ephemeral> in a background thread (the gateway, server, witness and
guard tests serve their apps through it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any


class ServerThread:
    """``with ServerThread(app, ssl=(cert, key)) as srv:`` serves ``app`` at ``srv.url`` until the block ends.

    ``config`` goes to ``uvicorn.Config`` (quiet by default: ``log_level="warning"``, no access log).

    ``log_config=None`` by default: uvicorn's own logging config goes through ``logging.config.dictConfig``,
    which closes *every* handler the process ever made. One made while pytest captured output (absl's, when
    an earlier test imported dp_accounting) holds pytest's capture stream, and closing it killed the worker
    ("lost sys.stderr") in the witness tests that followed the DP tests on one xdist worker."""

    def __init__(self, app: Any, *, ssl: tuple[str | Path, str | Path] | None = None, **config: Any) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        config.setdefault("log_level", "warning")
        config.setdefault("access_log", False)
        config.setdefault("log_config", None)
        if ssl:
            config.update(ssl_certfile=str(ssl[0]), ssl_keyfile=str(ssl[1]))
        self.server = uvicorn.Server(uvicorn.Config(app, **config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.url = f"{'https' if ssl else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        with contextlib.suppress(OSError):
            self._sock.close()

"""Saved logins: ``~/.config/bastion/credentials`` (``$XDG_CONFIG_HOME``), one token per server URL.

The file is JSON, mode 0600 in a 0700 directory, replaced atomically (a temporary created with ``O_EXCL``
beside it, then renamed); a file others may read or a link in its place is refused, never used.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.files import atomic_write

FILE_ENV = "BASTION_CREDENTIALS"


def credentials_path() -> Path:
    explicit = os.environ.get(FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "bastion" / "credentials"


def _read(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the credentials file {path} ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid():
            raise ConfigError(f"{path} must be a regular file of yours with mode 0600: refusing to use it")
        raw = fh.read(1 << 20)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
        raise ConfigError(f"{path} is not a bastion credentials file")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True))


def saved_login(url: str) -> dict[str, str] | None:
    """``{"token": ..., "ca": ...}`` saved for ``url`` (None when there is none)."""
    entry = _read(credentials_path()).get("servers", {}).get(url)
    return dict(entry) if isinstance(entry, dict) and isinstance(entry.get("token"), str) else None


def save_login(url: str, *, token: str, ca: str | None = None) -> Path:
    path = credentials_path()
    data = _read(path)
    entry = {"token": token} | ({"ca": ca} if ca else {})
    data.setdefault("servers", {})[url] = entry
    _write(path, data)
    return path


def remove_login(url: str | None = None) -> list[str]:
    """Forget the login for ``url`` (every login when None); returns the URLs removed."""
    path = credentials_path()
    data = _read(path)
    servers = data.get("servers", {})
    gone = [u for u in list(servers) if url is None or u == url]
    for u in gone:
        del servers[u]
    if gone:
        _write(path, data)
    return gone


__all__ = ["FILE_ENV", "credentials_path", "remove_login", "save_login", "saved_login"]

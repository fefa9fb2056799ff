"""Project home and settings.

A project home (``BASTION_HOME``, default ``./.bastion``) holds ``bastion.toml``, the key ring, the metadata
database and the blob store. ``bastion init`` creates it. Settings are one frozen object passed around;
unknown sections or keys raise :class:`~bastion.errors.ConfigError` instead of being silently dropped.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bastion.errors import ConfigError

HOME_ENV = "BASTION_HOME"
PASSPHRASE_ENV = "BASTION_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
TOKEN_ENV = "BASTION_TOKEN"  # noqa: S105 - a variable name, not a secret
CONFIG_FILE = "bastion.toml"
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")

# Each capability validates the keys of its own section; a section not listed here is an error.
KNOWN_SECTIONS: dict[str, frozenset[str]] = {
    "project": frozenset({"name", "default_env"}),
    "database": frozenset({"url"}),
    "blobs": frozenset({"path", "url", "endpoint_url", "region"}),  # bastion.store.blobs.open_blob_store
    "keys": frozenset({"provider", "pkcs11_module", "pkcs11_token", "pkcs11_pin_env", "kdf"}),
    "scan": frozenset({"max_pickle_bytes", "max_archive_ratio", "max_archive_bytes", "extra_allow"}),
    "data": frozenset({"policy", "token_scope", "chunk_rows"}),
    "privacy": frozenset({"default_budget", "default_delta"}),
    "audit": frozenset({"budget", "policy"}),
    "watermark": frozenset({"key_id"}),
    "log": frozenset({"witness"}),  # [[log.witness]] tables, validated by bastion.store.witness
    "server": frozenset({"max_upload_bytes", "max_upload_files"}),  # bastion.server.state.ServerSettings
    # governance: one table of rules per environment (validated by bastion.governance.policy)
    "policy": frozenset({"dev", "staging", "prod", "threat_model"}),
    "serve": frozenset(
        {
            "host",
            "port",
            "rate_limit",
            "redis_url",
            "output_policy",
            "monitor",
            "input_guard",
            "key_release",
            "jwt",
            "api_watermark",
            "theft",
            "text",
            "connections",
            "audit",
            "drift",
        }
    ),
}


def home_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The project home: the argument, else ``$BASTION_HOME``, else ``./.bastion``."""
    if home is not None:
        return Path(home).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / ".bastion").resolve()


@dataclass(frozen=True)
class Settings:
    """Everything read from a project home's ``bastion.toml``, with defaults filled in."""

    home: Path
    database_url: str
    blob_dir: Path
    keyring_path: Path
    key_provider: str = "local"
    default_env: str = "dev"
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def section(self, name: str) -> Mapping[str, Any]:
        """The raw table ``[name]`` of bastion.toml (empty when absent)."""
        if name not in KNOWN_SECTIONS:
            raise ConfigError(f"unknown configuration section [{name}]")
        return self.sections.get(name, MappingProxyType({}))


def default_database_url(home: Path) -> str:
    return f"sqlite:///{home / 'bastion.db'}"


def validate_config(data: Mapping[str, Any], *, source: str = CONFIG_FILE) -> None:
    """Raise ConfigError on any unknown section or key."""
    for section, table in data.items():
        allowed = KNOWN_SECTIONS.get(section)
        if allowed is None:
            raise ConfigError(f"{source}: unknown section [{section}]")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) in [{section}]: {', '.join(unknown)}")
    env = data.get("project", {}).get("default_env", "dev")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"{source}: default_env must be one of {', '.join(ENVIRONMENTS)}")


def load_settings(home: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Settings:
    """Read the settings of a project home.

    Raises ConfigError when the home (or its bastion.toml) is missing and ``must_exist`` is true, or when the
    file is malformed or names unknown settings.
    """
    root = home_path(home)
    cfg_file = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if cfg_file.is_file():
        try:
            data = tomllib.loads(cfg_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_file}: not valid TOML ({exc})") from exc
        validate_config(data, source=str(cfg_file))
    elif must_exist:
        raise ConfigError(
            f"no bastion project at {root}", hint="run 'bastion init' or set BASTION_HOME to an existing home"
        )
    db_url = data.get("database", {}).get("url") or default_database_url(root)
    blob_dir = Path(data.get("blobs", {}).get("path") or (root / "blobs"))
    if not blob_dir.is_absolute():
        blob_dir = root / blob_dir
    return Settings(
        home=root,
        database_url=str(db_url),
        blob_dir=blob_dir,
        keyring_path=root / "keyring.json",
        key_provider=str(data.get("keys", {}).get("provider", "local")),
        default_env=str(data.get("project", {}).get("default_env", "dev")),
        sections=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in data.items()}),
    )


def secure_home(root: Path) -> None:
    """Make the home 0700 and every file bastion keeps in it 0600, whatever the umask or earlier modes.

    Walks the home's own files and directories (not the blob files, which are created 0600, nor anything a
    symbolic link points to: links are left alone).
    """
    import stat

    def fix(path: Path, mode: int) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
            return
        try:
            os.chmod(path, mode, follow_symlinks=False)
        except OSError as exc:
            raise ConfigError(f"cannot restrict the permissions of {path} ({exc.strerror})") from exc

    fix(root, 0o700)
    blob_roots = {root / "blobs", root / "blobs" / "blake3"}
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            p = Path(e.path)
            if e.is_symlink():
                continue
            if e.is_dir():
                fix(p, 0o700)
                blob_fanout = p.parent in blob_roots and len(p.name) == 2
                if not blob_fanout:  # blob files are created 0600 by the store: not every blob is visited
                    stack.append(p)
            else:
                fix(p, 0o600)


def get_passphrase(*, prompt: bool = True, confirm: bool = False) -> str:
    """The key-ring passphrase from ``$BASTION_PASSPHRASE``, else an interactive prompt.

    Raises ConfigError when neither is available (e.g. in CI without the variable).
    """
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not prompt or not os.isatty(0):
        raise ConfigError(f"no passphrase: set {PASSPHRASE_ENV} or run interactively")
    first = getpass.getpass("bastion passphrase: ")
    if confirm and getpass.getpass("repeat passphrase: ") != first:
        raise ConfigError("passphrases do not match")
    if not first:
        raise ConfigError("empty passphrase")
    return first


__all__ = [
    "CONFIG_FILE",
    "ENVIRONMENTS",
    "HOME_ENV",
    "PASSPHRASE_ENV",
    "TOKEN_ENV",
    "Settings",
    "get_passphrase",
    "home_path",
    "load_settings",
    "secure_home",
    "validate_config",
]

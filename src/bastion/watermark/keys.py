"""Watermark keys: a 256-bit secret, identified by a key id that reveals nothing about it.

A key lives either in a key file (``bastion watermark keygen --out FILE``: JSON, mode 0600) or in the project
home, wrapped by the project's :class:`~bastion.crypto.interface.KeyProvider` (the local key ring or an HSM)
under ``<home>/watermark/keys/<key_id>.json``. The key id is ``HMAC-SHA256(key, "bastion-watermark-key-id")``
truncated to 128 bits; it is what commitments, records and reports name. Sub-keys for the trigger set and
the API watermark are derived with HKDF-SHA256 under distinct labels, so one key never feeds two uses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.crypto.interface import HeldWrap, KeyProvider, WrappedKey
from bastion.errors import Conflict, IntegrityError, InvalidInput, KeyNotFound, NotFound
from bastion.files import atomic_write

KEY_SIZE = 32
KEY_FILE_FORMAT = "bastion-watermark-key/v1"
KEYS_DIR = Path("watermark") / "keys"
_ID_LABEL = b"bastion-watermark-key-id"
MAX_KEY_FILE_BYTES = 64 * 1024


def key_id_of(secret: bytes) -> str:
    """The public identifier of a key: 32 hex digits of an HMAC under the key itself."""
    return hmac.new(secret, _ID_LABEL, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class WatermarkKey:
    """A watermark secret and its public id. ``repr`` never shows the secret."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise InvalidInput(f"a watermark key has {KEY_SIZE} bytes")
        if not hmac.compare_digest(key_id_of(self.secret), self.key_id):
            raise IntegrityError("the watermark key does not match its key id")

    @classmethod
    def from_secret(cls, secret: bytes) -> WatermarkKey:
        return cls(key_id=key_id_of(bytes(secret)), secret=bytes(secret))

    def derive(self, label: str, length: int = 32) -> bytes:
        """A sub-key for one purpose (HKDF-SHA256, ``info`` = the label)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(
            self.secret
        )


def generate_key() -> WatermarkKey:
    """A fresh key from the operating system's CSPRNG."""
    return WatermarkKey.from_secret(os.urandom(KEY_SIZE))


def write_key_file(key: WatermarkKey, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``key`` to a key file (mode 0600); refuses to replace an existing file unless ``overwrite``."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise Conflict(f"{out} already exists")
    doc = {"format": KEY_FILE_FORMAT, "key_id": key.key_id, "key": key.secret.hex()}
    atomic_write(out, json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n", mode=0o600)
    return out


def read_key_file(path: str | os.PathLike[str]) -> WatermarkKey:
    """Read a key file; a damaged file or one whose key does not match its id raises (without the key)."""
    src = Path(path)
    if not src.is_file():
        raise NotFound(f"no watermark key file {src}")
    if src.stat().st_size > MAX_KEY_FILE_BYTES:
        raise InvalidInput(f"{src}: not a watermark key file (too large)")
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
        if doc.get("format") != KEY_FILE_FORMAT:
            raise InvalidInput(f"{src}: not a watermark key file")
        secret = bytes.fromhex(str(doc["key"]))
        key_id = str(doc["key_id"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{src}: not a watermark key file") from exc
    if len(secret) != KEY_SIZE:
        raise InvalidInput(f"{src}: not a watermark key file (wrong key length)")
    if not hmac.compare_digest(key_id_of(secret), key_id):
        raise IntegrityError(f"{src}: the key does not match its key id")
    return WatermarkKey(key_id=key_id, secret=secret)


def _context(key_id: str) -> str:
    return f"bastion-watermark-key:{key_id}"


def _key_path(home: Path, key_id: str) -> Path:
    if len(key_id) != 32 or not all(c in "0123456789abcdef" for c in key_id):
        raise InvalidInput(f"not a watermark key id: {key_id!r}")
    return home / KEYS_DIR / f"{key_id}.json"


def store_key(key: WatermarkKey, *, home: str | os.PathLike[str], provider: KeyProvider, env: str) -> Path:
    """Wrap ``key`` under ``env``'s KEK and keep it in the project home."""
    path = _key_path(Path(home), key.key_id)
    if path.exists():
        raise Conflict(f"watermark key {key.key_id} already exists")
    wrapped = provider.wrap(env=env, dek=key.secret, context=_context(key.key_id))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"format": KEY_FILE_FORMAT, "key_id": key.key_id, "wrapped": wrapped.to_dict()}
    atomic_write(path, json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n", mode=0o600)
    return path


def home_key_ids(home: str | os.PathLike[str]) -> list[str]:
    """Ids of the keys kept in ``home`` (sorted)."""
    root = Path(home) / KEYS_DIR
    if not root.is_dir():
        return []
    return sorted(p.stem for p in root.glob("*.json"))


def load_home_key(
    *, home: str | os.PathLike[str], provider: KeyProvider, key_id: str | None = None
) -> WatermarkKey:
    """Unwrap a key kept in ``home``: ``key_id``, else the only one there."""
    if key_id is None:
        ids = home_key_ids(home)
        if not ids:
            raise KeyNotFound("no watermark key in this project", hint="run 'bastion watermark keygen'")
        if len(ids) > 1:
            raise InvalidInput(
                f"{len(ids)} watermark keys in this project: choose one with --key-id or [watermark] key_id"
            )
        key_id = ids[0]
    path = _key_path(Path(home), key_id)
    if not path.is_file():
        raise KeyNotFound(f"no watermark key {key_id} in this project")
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
        wrapped = WrappedKey.from_dict(doc["wrapped"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"watermark key {key_id} is damaged") from exc
    secret = provider.unwrap(wrapped, context=_context(key_id))
    if not hmac.compare_digest(key_id_of(secret), key_id):
        raise IntegrityError(f"watermark key {key_id} does not match its id")
    return WatermarkKey(key_id=key_id, secret=secret)


class WatermarkKeyHolder:
    """The wraps of the watermark keys kept in a home (``watermark/keys/*.json``), for rotate and retire."""

    label = "watermark key(s)"

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def held(self) -> list[HeldWrap]:
        out = []
        for key_id in home_key_ids(self.home):
            try:
                doc = json.loads(_key_path(self.home, key_id).read_text(encoding="utf-8"))
                wrapped = WrappedKey.from_dict(doc["wrapped"])
            except (ValueError, KeyError, TypeError) as exc:
                raise IntegrityError(f"watermark key {key_id} is damaged") from exc
            out.append(HeldWrap(key=key_id, wrapped=wrapped, context=_context(key_id)))
        return out

    def replace(self, key: str, wrapped: WrappedKey) -> None:
        path = _key_path(self.home, key)
        if not path.is_file():
            raise KeyNotFound(f"no watermark key {key} in this project")
        doc = {"format": KEY_FILE_FORMAT, "key_id": key, "wrapped": wrapped.to_dict()}
        atomic_write(path, json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n", mode=0o600)


def wrap_holder(settings: Any, engine: Any) -> WatermarkKeyHolder:
    """Entry point ``bastion.wrap_holders: watermark-keys``."""
    del engine
    return WatermarkKeyHolder(settings.home)


def ensure_home_key(*, vault: Any, env: str | None = None) -> tuple[WatermarkKey, bool]:
    """The key the home uses by default, created (and audit-logged) on first use: ``(key, created)``.

    Uses the ``[watermark] key_id`` setting, else the home's only key; when the home has none, a fresh key is
    generated, wrapped under ``env``'s KEK (default: the project's) and kept in the home. Needs
    ``watermark:embed``. Two or more keys without a setting is an error (which one is meant is ambiguous)."""
    vault.access.check(vault.identity, "watermark:embed")
    home = vault.settings.home
    configured = vault.settings.section("watermark").get("key_id")
    if configured is not None or home_key_ids(home):
        return load_home_key(home=home, provider=vault.keys, key_id=configured), False
    key = generate_key()
    env_name = env or vault.settings.default_env
    store_key(key, home=home, provider=vault.keys, env=env_name)
    vault.audit.append(
        actor=vault.identity.name,
        action="watermark:keygen",
        target=key.key_id,
        outcome="ok",
        details={"env": env_name, "on_first_use": True},
    )
    return key, True


def resolve_key(value: str | None, *, vault: Any = None) -> WatermarkKey:
    """A key from a key-file path, else a key id (or ``None``: the configured/only key) of the vault's home.

    Without ``value`` the ``[watermark] key_id`` setting names the key, else the home's only key is used.
    """
    if value is not None and Path(value).is_file():
        return read_key_file(value)
    if vault is None:
        if value is None:
            raise InvalidInput("give a watermark key file (--key-file) or use a project home")
        raise NotFound(f"no watermark key file {value}")
    key_id = value or vault.settings.section("watermark").get("key_id")
    return load_home_key(home=vault.settings.home, provider=vault.keys, key_id=key_id)


__all__ = [
    "KEY_SIZE",
    "WatermarkKey",
    "ensure_home_key",
    "generate_key",
    "home_key_ids",
    "key_id_of",
    "load_home_key",
    "read_key_file",
    "resolve_key",
    "store_key",
    "write_key_file",
]

"""Key providers: the public entry points for data keys and key-encryption keys.

``open_key_provider(settings, passphrase)`` returns the provider named by ``[keys] provider`` in
``bastion.toml``: ``local`` (default, :class:`LocalKeyRing` in ``<home>/keyring.json``) or ``pkcs11``
(:class:`~bastion.crypto.pkcs11.Pkcs11KeyProvider`, keys ``pkcs11_module``, ``pkcs11_token``,
``pkcs11_pin_env``). ``init_key_provider`` does the same for a new home (creates the key ring, or KEK
version 1 of each environment in the token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.config import ENVIRONMENTS, Settings
from bastion.crypto.interface import KekInfo, KeyProvider, WrappedKey, new_dek, rewrap
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keyring import LocalKeyRing, kek_label
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.crypto.pkcs11 import Pkcs11KeyProvider

PROVIDERS = ("local", "pkcs11")


def _kdf_from_settings(settings: Settings) -> KdfParams:
    name = settings.section("keys").get("kdf", "argon2id")
    if name == "scrypt":
        return KdfParams(name="scrypt", memory_kib=1 << 16)
    if name == "argon2id":
        return KdfParams()
    raise ConfigError(f"[keys] kdf must be 'argon2id' or 'scrypt', not {name!r}")


def open_key_provider(settings: Settings, passphrase: str | None) -> KeyProvider:
    """The configured provider of an existing home. ``passphrase`` is needed by the local key ring only."""
    if settings.key_provider == "local":
        if not passphrase:
            raise ConfigError("the local key ring needs a passphrase")
        return LocalKeyRing.open(settings.keyring_path, passphrase)
    if settings.key_provider == "pkcs11":
        from bastion.crypto.pkcs11 import Pkcs11KeyProvider

        return Pkcs11KeyProvider.from_settings(settings)
    raise ConfigError(f"unknown key provider {settings.key_provider!r} (use one of: {', '.join(PROVIDERS)})")


def init_key_provider(
    settings: Settings, passphrase: str | None, *, kdf: KdfParams | None = None
) -> KeyProvider:
    """Set up the provider of a new home: a fresh key ring, or KEK v1 per environment in the token.

    ``kdf`` overrides ``[keys] kdf`` (tests pass :meth:`KdfParams.unsafe_fast`).
    """
    if settings.key_provider == "local":
        if not passphrase:
            raise ConfigError("the local key ring needs a passphrase")
        return LocalKeyRing.create(
            settings.keyring_path, passphrase, kdf=kdf or _kdf_from_settings(settings), envs=ENVIRONMENTS
        )
    if settings.key_provider == "pkcs11":
        from bastion.crypto.pkcs11 import Pkcs11KeyProvider

        provider = Pkcs11KeyProvider.from_settings(settings)
        provider.ensure_environments(ENVIRONMENTS)
        return provider
    raise ConfigError(f"unknown key provider {settings.key_provider!r} (use one of: {', '.join(PROVIDERS)})")


def __getattr__(name: str) -> Any:
    if name == "Pkcs11KeyProvider":
        from bastion.crypto.pkcs11 import Pkcs11KeyProvider

        return Pkcs11KeyProvider
    raise AttributeError(name)


__all__ = [
    "PROVIDERS",
    "KdfParams",
    "KekInfo",
    "KeyProvider",
    "LocalKeyRing",
    "Pkcs11KeyProvider",
    "WrappedKey",
    "init_key_provider",
    "kek_label",
    "new_dek",
    "open_key_provider",
    "rewrap",
]

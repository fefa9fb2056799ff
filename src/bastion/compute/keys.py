"""Data keys on workers: a task carries the scope's WRAPPED key; the worker unwraps it with its own provider.

The client reads the scope's wrapped data key (:func:`bastion.data.catalog.wrapped_scope_key`) and puts it in
every task with a :class:`KeySource`: the project home whose ``[keys]`` settings name the provider (local key
ring or PKCS#11) and the name of the environment variable that holds the key ring's passphrase *on the
worker*. Neither the data key, the KEK nor the passphrase is in a task payload. A worker that cannot open the
provider, or whose provider does not unwrap the key (another key ring, a retired KEK), refuses the task with a
one-line :class:`~bastion.errors.ConfigError` / :class:`~bastion.errors.CryptoError`, and the job fails.

Each worker process opens the provider once and keeps the unwrapped scope keys for the jobs it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bastion.config import PASSPHRASE_ENV, load_settings
from bastion.crypto import KeyProvider, WrappedKey
from bastion.crypto.keys import open_key_provider
from bastion.data import ScopeKeys
from bastion.errors import BastionError, ConfigError, CryptoError


@dataclass(frozen=True)
class KeySource:
    """Where a worker finds the key provider: the project home and the passphrase variable's NAME."""

    home: str
    passphrase_env: str = PASSPHRASE_ENV


@dataclass(frozen=True)
class ScopedKey:
    """One token scope's data key as it travels to workers: wrapped, with its unwrap context."""

    scope: str
    wrapped: str  # WrappedKey JSON (ciphertext under the provider's KEK)
    context: str
    source: KeySource


_PROVIDERS: dict[KeySource, KeyProvider] = {}
_KEYS: dict[ScopedKey, ScopeKeys] = {}


def _provider(source: KeySource) -> KeyProvider:
    provider = _PROVIDERS.get(source)
    if provider is None:
        try:
            settings = load_settings(source.home)
            provider = open_key_provider(settings, os.environ.get(source.passphrase_env))
        except BastionError as exc:
            raise ConfigError(
                f"job refused: this worker cannot open the key provider of {source.home} "
                f"({type(exc).__name__}; the local key ring needs ${source.passphrase_env} on the worker)"
            ) from exc
        _PROVIDERS[source] = provider
    return provider


def unwrap_scope_key(key: ScopedKey) -> ScopeKeys:
    """Worker side: the scope's transforms, unwrapped through this worker's provider (cached per process)."""
    keys = _KEYS.get(key)
    if keys is not None:
        return keys
    provider = _provider(key.source)
    try:
        dek = provider.unwrap(WrappedKey.from_json(key.wrapped), context=key.context)
    except BastionError as exc:
        raise CryptoError("job refused: the data key does not unwrap on this worker") from exc
    keys = ScopeKeys(dek, scope=key.scope)
    _KEYS[key] = keys
    return keys


__all__ = ["KeySource", "ScopedKey", "unwrap_scope_key"]

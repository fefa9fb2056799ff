"""PKCS#11 key provider: KEKs are non-extractable AES-256 keys inside a token (HSM, SoftHSM2, cloud HSM).

KEK version *n* of environment *env* is the secret-key object labelled ``bastion-kek-<env>-v<n>``, generated
in the token with ``CKA_SENSITIVE=true``, ``CKA_EXTRACTABLE=false``, ``CKA_MODIFIABLE=false``: its value never
leaves the token. A DEK is wrapped by encrypting it *inside the token* with ``CKM_AES_GCM`` (96-bit random
nonce, 128-bit tag, associated data ``"bastion-dek" env version context``); the stored wrap is nonce ‖ GCM
output. SoftHSM2 2.6 through python-pkcs11 supports ``CKM_AES_GCM`` (checked by the tests), so the
unauthenticated ``CKM_AES_KEY_WRAP_PAD`` is not needed; GCM also binds the context, which RFC 5649 cannot.

The current version is the highest present; retiring destroys the object (irreversible), so a missing version
below the current one is reported as retired. Before using a KEK the provider checks it is still sensitive and
non-extractable, that it was generated in the token and never was extractable or readable (``CKA_LOCAL``,
``CKA_NEVER_EXTRACTABLE``, ``CKA_ALWAYS_SENSITIVE``: a planted *imported* key, whose value its planter knows,
is refused), and that its label is unique (a planted duplicate is refused).

The GCM nonce: PKCS#11 lets a token generate the IV only through the 3.0 message-based API
(``C_MessageEncryptInit`` with ``CKG_GENERATE_RANDOM``); SoftHSM2 2.6 and python-pkcs11 0.10 offer only
the 2.40 single-part ``CKM_AES_GCM``, where the caller passes the IV, so the 96-bit nonce comes from
``os.urandom`` (one random nonce per wrap, far below GCM's 2^32 random-nonce bound for one KEK).
Rotation is an administrative action: run it from one process at a time.

Configuration (``[keys]`` in ``bastion.toml``): ``provider = "pkcs11"``, ``pkcs11_module`` (the ``.so``),
``pkcs11_token`` (token label), ``pkcs11_pin_env`` (name of the environment variable holding the user PIN,
default ``BASTION_PKCS11_PIN``). The PIN is never written anywhere by bastion.

Slightly over ~400 lines: one provider, whose session handling (re-login, one session per thread) every
operation shares.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams

from bastion.config import Settings
from bastion.crypto.interface import DEK_SIZE, KekInfo, WrappedKey, context_bytes, dek_aad
from bastion.crypto.keyring import kek_label
from bastion.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    KeyNotFound,
    ServiceError,
    WrongPassphrase,
)

PROVIDER = "pkcs11"
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_PIN_ENV = "BASTION_PKCS11_PIN"
_NONCE_SIZE = 12
_BAD_WRAP = "wrapped key failed to authenticate"
_ENV_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_LIBS: dict[str, _Library] = {}
_LIBS_LOCK = threading.Lock()
_LOGINS: dict[tuple[str, str], bytes] = {}  # (module, token) -> digest of the PIN this process logged in with
_T = TypeVar("_T")
_STALE = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.UserNotLoggedIn,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
)


class _Library:
    """A loaded module and a generation counter bumped on every rescan (C_Finalize + C_Initialize).

    A rescan invalidates every session handle in the process, and the token may hand the same small integer to
    a new session: a provider whose session predates the current generation abandons it (never closes it)
    and opens a fresh one.
    """

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.generation = 0

    def rescan(self) -> None:
        self.lib.reinitialize()
        self.generation += 1


def _library(module: str) -> _Library:
    """One loaded library per module path per process (C_Initialize may run only once)."""
    with _LIBS_LOCK:
        holder = _LIBS.get(module)
        if holder is None:
            if not os.path.exists(module):
                raise ConfigError(f"PKCS#11 module not found: {module}")
            try:
                holder = _Library(pkcs11.lib(module))
            except (p11e.PKCS11Error, OSError) as exc:
                raise ConfigError(f"cannot load PKCS#11 module {module}") from exc
            _LIBS[module] = holder
        return holder


def _check_env(env: str) -> None:
    if not isinstance(env, str) or not _ENV_RE.match(env):
        raise InvalidInput(f"invalid environment name {env!r}")


class Pkcs11KeyProvider:
    """A :class:`~bastion.crypto.interface.KeyProvider` whose KEKs live in a PKCS#11 token."""

    name = PROVIDER

    def __init__(
        self,
        *,
        module: str,
        token_label: str,
        pin: str,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not pin:
            raise ConfigError("empty PKCS#11 PIN")
        self.module = module
        self.token_label = token_label
        self._pin = pin
        self._now = now or (lambda: datetime.now(UTC))
        self._lib = _library(module)
        self._session: Any = None
        self._generation = -1
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Pkcs11KeyProvider:
        section = settings.section("keys")
        token = section.get("pkcs11_token")
        if not token:
            raise ConfigError("[keys] pkcs11_token (the token label) is required for provider 'pkcs11'")
        pin_env = str(section.get("pkcs11_pin_env") or DEFAULT_PIN_ENV)
        pin = os.environ.get(pin_env)
        if not pin:
            raise ConfigError(f"no PKCS#11 PIN: set the environment variable {pin_env}")
        return cls(
            module=str(section.get("pkcs11_module") or DEFAULT_MODULE), token_label=str(token), pin=pin
        )

    # -- sessions -----------------------------------------------------------------------------------------
    def _find_token(self) -> Any:
        try:
            return self._lib.lib.get_token(token_label=self.token_label)
        except p11e.NoSuchToken:
            pass
        except p11e.MultipleTokensReturned as exc:
            raise ConfigError(f"several PKCS#11 tokens are labelled {self.token_label!r}") from exc
        # a token initialised after this process loaded the module: rescan the slots once
        with _LIBS_LOCK:
            self._lib.rescan()
        try:
            return self._lib.lib.get_token(token_label=self.token_label)
        except p11e.NoSuchToken as exc:
            raise ConfigError(f"no PKCS#11 token labelled {self.token_label!r}") from exc

    def _open(self) -> Any:
        token = self._find_token()
        key = (self.module, self.token_label)
        pin_digest = hashlib.sha256(b"bastion-pkcs11-pin\x00" + self._pin.encode("utf-8")).digest()
        try:
            session = token.open(user_pin=self._pin, rw=True)
        except p11e.UserAlreadyLoggedIn as exc:
            # login state is per process: another provider on this token logged in already. Its session
            # serves us only if it logged in with the same PIN (a wrong PIN must not ride on its login).
            known = _LOGINS.get(key)
            if known is None or not hmac.compare_digest(known, pin_digest):
                raise WrongPassphrase("the PKCS#11 token did not open: wrong PIN") from exc
            return token.open(rw=True)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange) as exc:
            raise WrongPassphrase("the PKCS#11 token did not open: wrong PIN") from exc
        except p11e.PinLocked as exc:
            raise ServiceError("the PKCS#11 token's PIN is locked") from exc
        except p11e.PKCS11Error as exc:
            raise ServiceError(f"cannot open a session on PKCS#11 token {self.token_label!r}") from exc
        _LOGINS[key] = pin_digest
        return session

    def _call(self, fn: Callable[[Any], _T]) -> _T:
        with self._lock:
            for attempt in range(2):
                if self._session is not None and self._generation != self._lib.generation:
                    self._session = None  # its handle died in a rescan (and may now name another session)
                if self._session is None:
                    session = self._open()
                    self._session, self._generation = session, self._lib.generation
                try:
                    return fn(self._session)
                except _STALE as exc:
                    self._drop()
                    if attempt:
                        raise ServiceError("the PKCS#11 session was lost") from exc
                except p11e.PKCS11Error as exc:
                    raise ServiceError(f"PKCS#11 operation failed ({type(exc).__name__})") from exc
            raise ServiceError("the PKCS#11 session was lost")

    def _drop(self) -> None:
        if self._session is not None and self._generation == self._lib.generation:
            with contextlib.suppress(p11e.PKCS11Error):
                self._session.close()
        self._session = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Pkcs11KeyProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- key objects --------------------------------------------------------------------------------------
    @staticmethod
    def _keys(session: Any, env: str) -> dict[int, Any]:
        prefix = f"bastion-kek-{env}-v"
        found: dict[int, Any] = {}
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            label = obj.label or ""
            if not label.startswith(prefix) or not label[len(prefix) :].isdigit():
                continue
            version = int(label[len(prefix) :])
            if version in found:
                raise IntegrityError(f"two token keys are labelled {label}: refusing an ambiguous KEK")
            found[version] = obj
        return found

    @staticmethod
    def _checked(key: Any, label: str) -> Any:
        if key.key_type != KeyType.AES or key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            raise IntegrityError(f"token key {label} is not a sensitive, non-extractable AES key")
        # An imported key can be marked sensitive and non-extractable after the fact, but its value was known
        # outside the token: only a key generated inside it (LOCAL) that never was extractable or readable
        # (NEVER_EXTRACTABLE, ALWAYS_SENSITIVE) is accepted as a KEK.
        try:
            provenance = (
                key[Attribute.LOCAL],
                key[Attribute.NEVER_EXTRACTABLE],
                key[Attribute.ALWAYS_SENSITIVE],
            )
        except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive) as exc:
            raise IntegrityError(f"token key {label}: the token does not report where it came from") from exc
        if not all(provenance):
            raise IntegrityError(
                f"token key {label} was not generated in the token as a never-extractable key: refused"
            )
        return key

    def _generate(self, session: Any, env: str, version: int) -> None:
        created = self._now().isoformat(timespec="seconds")
        session.generate_key(
            KeyType.AES,
            256,
            label=kek_label(env, version),
            store=True,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.MODIFIABLE: False,
                Attribute.PRIVATE: True,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.ID: b"bastion:" + created.encode("ascii"),
            },
        )

    # -- KeyProvider --------------------------------------------------------------------------------------
    def ensure_environments(self, envs: Iterable[str]) -> None:
        """Create KEK version 1 for every environment that has no KEK in the token yet."""
        env_list = list(envs)
        for env in env_list:
            _check_env(env)

        def run(session: Any) -> None:
            for env in env_list:
                if not self._keys(session, env):
                    self._generate(session, env, 1)

        self._call(run)

    def current_version(self, env: str) -> int:
        _check_env(env)
        keys = self._call(lambda s: self._keys(s, env))
        if not keys:
            raise KeyNotFound(f"no key-encryption key for environment '{env}' in the token")
        return max(keys)

    def versions(self, env: str) -> list[KekInfo]:
        _check_env(env)

        def run(session: Any) -> list[KekInfo]:
            keys = self._keys(session, env)
            if not keys:
                raise KeyNotFound(f"no key-encryption key for environment '{env}' in the token")
            current = max(keys)
            infos = []
            for version in range(1, current + 1):
                key = keys.get(version)
                created = ""
                if key is not None:
                    ident = bytes(key.id or b"")
                    if ident.startswith(b"bastion:"):
                        created = ident[len(b"bastion:") :].decode("ascii", "replace")
                infos.append(
                    KekInfo(
                        env=env,
                        version=version,
                        created_at=created,
                        current=version == current,
                        retired=key is None,
                        label=kek_label(env, version),
                    )
                )
            return infos

        return self._call(run)

    def rotate(self, *, env: str) -> int:
        _check_env(env)

        def run(session: Any) -> int:
            keys = self._keys(session, env)
            version = max(keys, default=0) + 1
            self._generate(session, env, version)
            return version

        return self._call(run)

    def retire(self, *, env: str, version: int) -> None:
        _check_env(env)

        def run(session: Any) -> None:
            keys = self._keys(session, env)
            if version not in keys:
                raise KeyNotFound(f"KEK {kek_label(env, version)} does not exist or was retired")
            if version == max(keys):
                raise Conflict(f"KEK {kek_label(env, version)} is current: rotate before retiring it")
            keys[version].destroy()

        self._call(run)

    def wrap(self, *, env: str, dek: bytes, context: bytes | str) -> WrappedKey:
        _check_env(env)
        if not isinstance(dek, bytes | bytearray) or len(dek) != DEK_SIZE:
            raise InvalidInput(f"a data key must be {DEK_SIZE} bytes")
        aad_context = context_bytes(context)

        def run(session: Any) -> WrappedKey:
            keys = self._keys(session, env)
            if not keys:
                raise KeyNotFound(f"no key-encryption key for environment '{env}' in the token")
            version = max(keys)
            key = self._checked(keys[version], kek_label(env, version))
            nonce = os.urandom(_NONCE_SIZE)
            sealed = key.encrypt(
                bytes(dek),
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, dek_aad(env, version, aad_context), 128),
            )
            return WrappedKey(
                provider=PROVIDER, env=env, kek_version=version, ciphertext=nonce + bytes(sealed)
            )

        return self._call(run)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes | str) -> bytes:
        if wrapped.provider != PROVIDER or not _ENV_RE.match(wrapped.env):
            raise IntegrityError(_BAD_WRAP)
        blob = wrapped.ciphertext
        if len(blob) != _NONCE_SIZE + DEK_SIZE + 16:
            raise IntegrityError(_BAD_WRAP)
        aad = dek_aad(wrapped.env, wrapped.kek_version, context_bytes(context))
        label = kek_label(wrapped.env, wrapped.kek_version)

        def run(session: Any) -> bytes:
            keys = self._keys(session, wrapped.env)
            if not keys or wrapped.kek_version > max(keys):
                raise IntegrityError(_BAD_WRAP)  # an environment or version the token never had
            key = keys.get(wrapped.kek_version)
            if key is None:
                raise KeyNotFound(f"KEK {label} was retired")
            key = self._checked(key, label)
            try:
                plain = key.decrypt(
                    blob[_NONCE_SIZE:],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(blob[:_NONCE_SIZE], aad, 128),
                )
            except (p11e.GeneralError, p11e.EncryptedDataInvalid, p11e.EncryptedDataLenRange) as exc:
                raise IntegrityError(_BAD_WRAP) from exc
            if len(plain) != DEK_SIZE:
                raise IntegrityError(_BAD_WRAP)
            return bytes(plain)

        return self._call(run)


__all__ = ["DEFAULT_MODULE", "DEFAULT_PIN_ENV", "Pkcs11KeyProvider"]

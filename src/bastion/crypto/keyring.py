"""The local key ring: per-environment, versioned KEKs in one JSON file, sealed under a passphrase.

``keyring.json`` (mode 0600, written atomically: temp file + fsync + rename, under an advisory lock)::

    {"format": "bastion-keyring/1",
     "kdf": {"name": "argon2id", "time_cost": 3, "memory_kib": 65536, "parallelism": 1},
     "salt": b64, "check": b64,
     "envs": {"dev": {"current": 2, "keks": [{"version": 1, "created_at": iso, "retired": true,
                                              "wrapped": null}, {"version": 2, ..., "wrapped": b64}]}, ...},
     "mac": b64}

From the passphrase, Argon2id (or scrypt) gives a master key; HKDF-SHA256 splits it into a wrapping key, a MAC
key and a 16-byte key-check value. A wrong passphrase fails the check value (:class:`WrongPassphrase`);
anything else that fails (HMAC-SHA256 over the canonical document, a KEK's AES-GCM tag, the structure) raises
:class:`IntegrityError`: a tampered key ring never yields keys.

Each KEK is 32 random bytes, stored as AES-256-GCM(wrapping key, nonce, KEK, aad="bastion-kek" env version).
A DEK is wrapped as nonce (12) ‖ AES-256-GCM(KEK, nonce, DEK, aad="bastion-dek" env version context).

Rotation and retirement: :meth:`LocalKeyRing.rotate` adds a version and makes it current; existing wraps keep
working because each records its KEK version. :meth:`LocalKeyRing.retire` destroys a non-current version's
key material (irreversible): a DEK still wrapped under it raises :class:`KeyNotFound`. So the vault must
rewrap every DEK (:func:`bastion.crypto.interface.rewrap`) before it retires a version.

Over ~400 lines on purpose: one file format and one provider (read, MAC, lock, rotate, retire, passphrase
change share the document and its lock); the shared pieces (DEK-wrap AD, canonical JSON, atomic writes) live
in :mod:`bastion.crypto.interface`, :mod:`bastion.crypto.canonical` and :mod:`bastion.files`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.config import ENVIRONMENTS
from bastion.crypto.canonical import canonical_forms, canonical_json
from bastion.crypto.interface import DEK_SIZE, KekInfo, WrappedKey, context_bytes, dek_aad
from bastion.crypto.kdf import SALT_SIZE, KdfParams, derive_key
from bastion.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    KeyNotFound,
    WrongPassphrase,
)
from bastion.files import atomic_write, locked

FORMAT = "bastion-keyring/1"
PROVIDER = "local"
_NONCE_SIZE = 12
_DAMAGED = "the key ring failed its integrity check (tampered or damaged)"
_BAD_WRAP = "wrapped key failed to authenticate"


def kek_label(env: str, version: int) -> str:
    """The name of a KEK version, shared by every provider (``bastion-kek-<env>-v<n>``)."""
    return f"bastion-kek-{env}-v{version}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise IntegrityError(_DAMAGED)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise IntegrityError(_DAMAGED) from exc
    if _b64(raw) != text:  # only the canonical encoding: no malleable padding bits
        raise IntegrityError(_DAMAGED)
    return raw


def _mac_body(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "mac"}


def _kek_aad(env: str, version: int) -> bytes:
    return b"bastion-kek\x00" + env.encode() + b"\x00" + str(version).encode()


@dataclass(frozen=True)
class _Secrets:
    salt: bytes
    kdf: KdfParams
    wrap_key: bytes
    mac_key: bytes
    check: bytes

    @classmethod
    def derive(cls, passphrase: str, *, salt: bytes, kdf: KdfParams) -> _Secrets:
        master = derive_key(passphrase, salt=salt, params=kdf)

        def sub(info: bytes, length: int = 32) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)

        return cls(
            salt=salt,
            kdf=kdf,
            wrap_key=sub(b"bastion/keyring/wrap"),
            mac_key=sub(b"bastion/keyring/mac"),
            check=sub(b"bastion/keyring/check", 16),
        )

    def mac(self, doc: dict[str, Any]) -> bytes:
        """HMAC-SHA256 over the RFC 8785 encoding of the document without its ``mac``."""
        return hmac.new(self.mac_key, canonical_json(_mac_body(doc)), "sha256").digest()

    def mac_matches(self, doc: dict[str, Any], mac: bytes) -> bool:
        """Whether ``mac`` authenticates ``doc``: over RFC 8785, or over the ASCII JSON a key ring written
        before issue 13 was MACed with (the next write re-MACs it in RFC 8785)."""
        return any(
            hmac.compare_digest(mac, hmac.new(self.mac_key, form, "sha256").digest())
            for form in canonical_forms(_mac_body(doc), ascii=True)
        )


MAX_KEYRING_BYTES = 1 << 20  # a key ring is a few KiB; anything near this is not one


def _read_doc(path: Path) -> dict[str, Any]:
    """Read keyring.json: a regular file (no link followed, no device or FIFO), at most 1 MiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise ConfigError(f"no key ring at {path}", hint="run 'bastion init' first") from exc
    except OSError as exc:  # ELOOP: a symbolic link; anything else: unreadable
        raise IntegrityError(_DAMAGED) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEYRING_BYTES:
            raise IntegrityError(_DAMAGED)
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 16):
            total += len(chunk)
            if total > MAX_KEYRING_BYTES:  # it grew while we read
                raise IntegrityError(_DAMAGED)
            chunks.append(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        raise IntegrityError(_DAMAGED) from exc
    finally:
        os.close(fd)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(_DAMAGED) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise IntegrityError(_DAMAGED)
    return doc


def _open_doc(doc: dict[str, Any], secrets: _Secrets) -> dict[tuple[str, int], bytes]:
    """Verify the check value, the MAC and every KEK; return the KEKs by (env, version)."""
    if not hmac.compare_digest(_unb64(doc.get("check")), secrets.check):
        raise WrongPassphrase("the key ring did not open: wrong passphrase")
    if not secrets.mac_matches(doc, _unb64(doc.get("mac"))):
        raise IntegrityError(_DAMAGED)
    envs = doc.get("envs")
    if not isinstance(envs, dict) or not envs:
        raise IntegrityError(_DAMAGED)
    wrapper = AESGCM(secrets.wrap_key)
    keks: dict[tuple[str, int], bytes] = {}
    for env, entry in envs.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("keks"), list):
            raise IntegrityError(_DAMAGED)
        current = entry.get("current")
        seen_current = False
        for kek in entry["keks"]:
            if not isinstance(kek, dict):
                raise IntegrityError(_DAMAGED)
            version, retired, wrapped = kek.get("version"), kek.get("retired"), kek.get("wrapped")
            if not isinstance(version, int) or not isinstance(retired, bool) or (env, version) in keks:
                raise IntegrityError(_DAMAGED)
            if retired:
                if wrapped is not None or version == current:
                    raise IntegrityError(_DAMAGED)
                continue
            blob = _unb64(wrapped)
            try:
                keks[(env, version)] = wrapper.decrypt(
                    blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], _kek_aad(env, version)
                )
            except (InvalidTag, ValueError) as exc:
                raise IntegrityError(_DAMAGED) from exc
            seen_current = seen_current or version == current
        if not seen_current:
            raise IntegrityError(_DAMAGED)
    return keks


class LocalKeyRing:
    """The default :class:`~bastion.crypto.interface.KeyProvider`: KEKs in ``keyring.json``.

    Build one with :meth:`create` or :meth:`open`; the passphrase itself is never kept.
    """

    name = PROVIDER

    def __init__(
        self,
        path: Path,
        *,
        doc: dict[str, Any],
        secrets: _Secrets,
        keks: dict[tuple[str, int], bytes],
        now: Callable[[], datetime],
    ) -> None:
        self.path = path
        self._doc = doc
        self._secrets = secrets
        self._keks = keks
        self._now = now
        self._stamp = self._file_stamp()

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str,
        *,
        kdf: KdfParams | None = None,
        envs: Iterable[str] = ENVIRONMENTS,
        now: Callable[[], datetime] | None = None,
    ) -> LocalKeyRing:
        """Create a new key ring with KEK version 1 for each environment; refuses to overwrite one."""
        target = Path(path)
        if target.exists():
            raise Conflict(f"a key ring already exists at {target}")
        env_list = list(envs)
        if not env_list or len(set(env_list)) != len(env_list):
            raise InvalidInput("a key ring needs distinct environment names")
        params = kdf or KdfParams()
        clock = now or (lambda: datetime.now(UTC))
        secrets = _Secrets.derive(passphrase, salt=os.urandom(SALT_SIZE), kdf=params)
        doc: dict[str, Any] = {
            "format": FORMAT,
            "kdf": params.to_dict(),
            "salt": _b64(secrets.salt),
            "check": _b64(secrets.check),
            "envs": {env: {"current": 0, "keks": []} for env in env_list},
        }
        ring = cls(target, doc=doc, secrets=secrets, keks={}, now=clock)
        for env in env_list:
            ring._add_version(doc, env)
        target.parent.mkdir(parents=True, exist_ok=True)
        with locked(target):
            if target.exists():
                raise Conflict(f"a key ring already exists at {target}")
            ring._write(doc)
        return ring

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], passphrase: str, *, now: Callable[[], datetime] | None = None
    ) -> LocalKeyRing:
        """Open a key ring. Wrong passphrase: :class:`WrongPassphrase`; tampering: :class:`IntegrityError`."""
        target = Path(path)
        doc = _read_doc(target)
        try:
            params = KdfParams.from_dict(doc.get("kdf"))
        except InvalidInput as exc:
            raise IntegrityError(_DAMAGED) from exc
        salt = _unb64(doc.get("salt"))
        if len(salt) < SALT_SIZE:
            raise IntegrityError(_DAMAGED)
        secrets = _Secrets.derive(passphrase, salt=salt, kdf=params)
        keks = _open_doc(doc, secrets)
        return cls(target, doc=doc, secrets=secrets, keks=keks, now=now or (lambda: datetime.now(UTC)))

    # -- internals ----------------------------------------------------------------------------------------
    def _write(self, doc: dict[str, Any], secrets: _Secrets | None = None) -> None:
        doc["mac"] = _b64((secrets or self._secrets).mac(doc))
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))
        self._doc = doc
        self._stamp = self._file_stamp()

    def _add_version(self, doc: dict[str, Any], env: str) -> int:
        entry = doc["envs"][env]
        version = max((k["version"] for k in entry["keks"]), default=0) + 1
        kek = os.urandom(32)
        nonce = os.urandom(_NONCE_SIZE)
        wrapped = nonce + AESGCM(self._secrets.wrap_key).encrypt(nonce, kek, _kek_aad(env, version))
        entry["keks"].append(
            {
                "version": version,
                "created_at": self._now().isoformat(),
                "retired": False,
                "wrapped": _b64(wrapped),
            }
        )
        entry["current"] = version
        self._keks[(env, version)] = kek
        return version

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Pick up rotations and retirements made by another process (one stat per call when unchanged)."""
        if self._file_stamp() != self._stamp:
            with locked(self.path):
                self._reload_locked()

    def _reload_locked(self) -> dict[str, Any]:
        """Re-read the file (another process may have rotated) with the keys already derived."""
        doc = _read_doc(self.path)
        if doc.get("salt") != _b64(self._secrets.salt) or doc.get("kdf") != self._secrets.kdf.to_dict():
            raise WrongPassphrase("the key ring's passphrase was changed: open it again")
        stamp = self._file_stamp()
        self._keks = _open_doc(doc, self._secrets)
        self._doc = doc
        self._stamp = stamp
        return doc

    def _entry(self, env: str) -> dict[str, Any]:
        entry = self._doc["envs"].get(env)
        if entry is None:
            raise KeyNotFound(f"no key-encryption key for environment '{env}'")
        return entry  # type: ignore[no-any-return]

    def _kek(self, env: str, version: int) -> bytes:
        kek = self._keks.get((env, version))
        if kek is None:
            raise KeyNotFound(f"KEK {kek_label(env, version)} does not exist or was retired")
        return kek

    # -- KeyProvider ----------------------------------------------------------------------------------------
    def current_version(self, env: str) -> int:
        self._refresh()
        return int(self._entry(env)["current"])

    def versions(self, env: str) -> list[KekInfo]:
        self._refresh()
        entry = self._entry(env)
        return [
            KekInfo(
                env=env,
                version=k["version"],
                created_at=k["created_at"],
                current=k["version"] == entry["current"],
                retired=k["retired"],
                label=kek_label(env, k["version"]),
            )
            for k in sorted(entry["keks"], key=lambda k: k["version"])
        ]

    def environments(self) -> list[str]:
        self._refresh()
        return list(self._doc["envs"])

    def wrap(self, *, env: str, dek: bytes, context: bytes | str) -> WrappedKey:
        if not isinstance(dek, bytes | bytearray) or len(dek) != DEK_SIZE:
            raise InvalidInput(f"a data key must be {DEK_SIZE} bytes")
        version = self.current_version(env)
        kek = self._kek(env, version)
        nonce = os.urandom(_NONCE_SIZE)
        sealed = AESGCM(kek).encrypt(nonce, bytes(dek), dek_aad(env, version, context_bytes(context)))
        return WrappedKey(provider=PROVIDER, env=env, kek_version=version, ciphertext=nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes | str) -> bytes:
        if wrapped.provider != PROVIDER:
            raise IntegrityError(_BAD_WRAP)
        self._refresh()
        entry = self._doc["envs"].get(wrapped.env)
        if entry is None or wrapped.kek_version not in {k["version"] for k in entry["keks"]}:
            # a wrap naming an environment or version this ring never had was forged or damaged
            raise IntegrityError(_BAD_WRAP)
        kek = self._kek(wrapped.env, wrapped.kek_version)
        blob = wrapped.ciphertext
        if len(blob) != _NONCE_SIZE + DEK_SIZE + 16:
            raise IntegrityError(_BAD_WRAP)
        try:
            return AESGCM(kek).decrypt(
                blob[:_NONCE_SIZE],
                blob[_NONCE_SIZE:],
                dek_aad(wrapped.env, wrapped.kek_version, context_bytes(context)),
            )
        except InvalidTag as exc:
            raise IntegrityError(_BAD_WRAP) from exc

    def rotate(self, *, env: str) -> int:
        with locked(self.path):
            doc = self._reload_locked()
            self._entry(env)
            version = self._add_version(doc, env)
            self._write(doc)
        return version

    def retire(self, *, env: str, version: int) -> None:
        with locked(self.path):
            doc = self._reload_locked()
            entry = self._entry(env)
            if version == entry["current"]:
                raise Conflict(f"KEK {kek_label(env, version)} is current: rotate before retiring it")
            for kek in entry["keks"]:
                if kek["version"] == version and not kek["retired"]:
                    kek["retired"] = True
                    kek["wrapped"] = None
                    break
            else:
                raise KeyNotFound(f"KEK {kek_label(env, version)} does not exist or was retired")
            self._write(doc)
            self._keks.pop((env, version), None)

    def change_passphrase(self, new_passphrase: str, *, kdf: KdfParams | None = None) -> None:
        """Re-seal every KEK under a key from ``new_passphrase`` (fresh salt). DEK wraps are unaffected."""
        with locked(self.path):
            doc = self._reload_locked()
            params = kdf or self._secrets.kdf
            secrets = _Secrets.derive(new_passphrase, salt=os.urandom(SALT_SIZE), kdf=params)
            wrapper = AESGCM(secrets.wrap_key)
            for env, entry in doc["envs"].items():
                for kek in entry["keks"]:
                    if kek["retired"]:
                        continue
                    nonce = os.urandom(_NONCE_SIZE)
                    material = self._keks[(env, kek["version"])]
                    kek["wrapped"] = _b64(
                        nonce + wrapper.encrypt(nonce, material, _kek_aad(env, kek["version"]))
                    )
            doc["kdf"] = params.to_dict()
            doc["salt"] = _b64(secrets.salt)
            doc["check"] = _b64(secrets.check)
            self._write(doc, secrets)
            self._secrets = secrets


__all__ = ["LocalKeyRing", "kek_label"]

"""Gateway authentication: bastion API tokens and optional JWTs (ES256/RS256), with a short verified cache.

Tokens are verified by :meth:`bastion.access.AccessControl.authenticate` (salted HMAC, constant-time compare);
a verified token is cached for ``token_cache_s`` seconds under the SHA-256 of the token (never the token),
so the hot path does not reach the database. A revoked token therefore stays usable for at most that long.
Failed verifications are cached for a shorter time in a separate, smaller cache, so a flood of random tokens
neither hammers the database nor evicts the verified ones (the gateway also limits failures per address before
any lookup, :mod:`bastion.serve.ratelimit`). JWTs are verified with PyJWT against a configured public key:
signature, ``exp``, ``sub``, ``iss`` and ``aud`` are all required; the role comes from the ``role`` claim and
the model grants from ``models``. Any error while decoding a hostile token is an authentication failure.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.access import ROLES, Identity
from bastion.errors import AuthenticationFailed, ConfigError
from bastion.serve.config import JwtConfig

_FAIL_CACHE_S = 5.0
_MAX_CACHE = 10_000
_MAX_FAIL_CACHE = 2_000
_MAX_TOKEN_LEN = 4096


def token_fingerprint(token: str) -> str:
    """What the gateway may keep or log about a token: a truncated SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


class JwtVerifier:
    """Verifies ES256/RS256 JWTs against one public key; ``exp`` is mandatory."""

    def __init__(self, config: JwtConfig, *, pem: bytes | None = None) -> None:
        """``pem``: the public key's bytes as already read (and fingerprinted) by the caller."""
        import jwt

        if config.public_key_file is None:
            raise ConfigError("[serve.jwt] needs public_key_file")
        if not config.issuer or not config.audience:
            raise ConfigError("[serve.jwt] needs issuer and audience")
        try:
            if pem is None:
                pem = Path(config.public_key_file).read_bytes()
            self._key = jwt.algorithms.get_default_algorithms()[config.algorithms[0]].prepare_key(pem)
        except (OSError, ValueError, KeyError, jwt.InvalidKeyError) as exc:
            raise ConfigError(f"[serve.jwt] cannot load the public key {config.public_key_file}") from exc
        self._cfg = config

    def verify(self, token: str) -> Identity:
        import jwt

        cfg = self._cfg
        options: Any = {"require": ["exp", "sub", "iss", "aud"], "verify_aud": True, "verify_iss": True}
        try:
            claims = jwt.decode(
                token,
                key=self._key,
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway_s,
                options=options,
            )
        except Exception as exc:  # PyJWTError, and TypeError/ValueError on hostile headers or payloads
            raise AuthenticationFailed("invalid JWT") from exc
        if not isinstance(claims, dict) or _exp(claims.get("exp")) is None:
            raise AuthenticationFailed("invalid JWT")  # exp a JSON number in range (not "123", not 1e400)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise AuthenticationFailed("invalid JWT")
        role = claims.get(cfg.role_claim)
        models = claims.get(cfg.models_claim, [])
        if role not in ROLES or not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise AuthenticationFailed("invalid JWT")
        if role == "consumer" and not models:
            raise AuthenticationFailed("invalid JWT")
        sub = subject[:200]
        return Identity(id=f"jwt:{sub}", name=sub, role=role, models=tuple(models) or ("*",))

    def expires_at(self, token: str) -> float | None:
        """The ``exp`` of a token that already verified (unix seconds), or None."""
        import jwt

        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        except Exception:  # verified above; a second decode cannot differ, but never raise from here
            return 0.0
        value = _exp(exp)
        return 0.0 if value is None else value  # odd exp (refused by verify): cache nothing


_MAX_EXP = 1e11  # year 5138: any larger exp is not a real expiry


def _exp(value: Any) -> float | None:
    """``exp`` as unix seconds when it is a JSON number (not a bool or string) in 0 < exp < 1e11."""
    if type(value) not in (int, float):
        return None
    try:
        exp = float(value)
    except OverflowError:
        return None
    return exp if math.isfinite(exp) and 0 < exp < _MAX_EXP else None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Authenticator:
    """``Authorization`` header → :class:`Identity`, or AuthenticationFailed. Thread-safe."""

    def __init__(
        self,
        *,
        verify_token: Callable[[str], Identity],
        jwt_verifier: JwtVerifier | None = None,
        cache_s: float = 30.0,
        token_prefix: str = "bst_",  # noqa: S107 - a public prefix
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verify_token = verify_token
        self._jwt = jwt_verifier
        self._ttl = cache_s
        self._prefix = token_prefix
        self._now = now
        self._cache: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._failed: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def bearer(header: str | None) -> str:
        if not header:
            raise AuthenticationFailed("missing credentials")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_LEN:
            raise AuthenticationFailed("invalid credentials")
        return token

    def cached(self, token: str) -> Identity | None:
        """The cached identity for a token, or None when it must be verified (fast path, no I/O)."""
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = self._now()
        with self._lock:
            failed = self._failed.get(key)
            if failed is not None:
                if failed >= now:
                    raise AuthenticationFailed("invalid credentials")
                del self._failed[key]
            hit = self._cache.get(key)
            if hit is None:
                return None
            expires, identity = hit
            if expires < now:
                del self._cache[key]
                return None
        return identity

    def verify(self, token: str) -> Identity:
        """Verify a token (may reach the identity store) and cache the result."""
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        identity: Identity | None = None
        expires_at = self._now() + self._ttl
        try:
            if self._jwt is not None and looks_like_jwt(token):
                identity = self._jwt.verify(token)
            elif token.startswith(self._prefix):
                identity = self._verify_token(token)
            else:
                raise AuthenticationFailed("invalid credentials")
        except AuthenticationFailed:
            self._store_failure(key, self._now() + min(_FAIL_CACHE_S, self._ttl))
            raise
        if self._jwt is not None and looks_like_jwt(token):
            exp = self._jwt.expires_at(token)
            if exp is not None:
                expires_at = min(expires_at, self._now() + max(0.0, exp - time.time()))
        self._store(key, expires_at, identity)
        return identity

    def _store(self, key: str, expires: float, identity: Identity) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (expires, identity)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_CACHE:
                self._cache.popitem(last=False)

    def _store_failure(self, key: str, expires: float) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._failed[key] = expires
            self._failed.move_to_end(key)
            while len(self._failed) > _MAX_FAIL_CACHE:
                self._failed.popitem(last=False)

    def cache_sizes(self) -> tuple[int, int]:
        """(verified, failed) entries held: the two caches are bounded separately."""
        with self._lock:
            return len(self._cache), len(self._failed)

    def authenticate(self, header: str | None) -> Identity:
        token = self.bearer(header)
        return self.cached(token) or self.verify(token)


__all__ = ["Authenticator", "JwtVerifier", "looks_like_jwt", "token_fingerprint"]

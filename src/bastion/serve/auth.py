"""Gateway authentication: bastion API tokens and optional JWTs (ES256/RS256), with a short verified cache.

Tokens are verified by :meth:`bastion.access.AccessControl.authenticate` (salted HMAC, constant-time compare);
a verified token is cached for ``token_cache_s`` seconds under the SHA-256 of the token (never the token),
so the hot path does not reach the database. A revoked token therefore stays usable for at most that long.
Failed verifications are cached for a shorter time so a flood of bad tokens cannot hammer the database.
JWTs are verified with PyJWT against a configured public key: signature, ``exp`` (required), ``iss`` and
``aud`` (when configured); the role comes from the ``role`` claim and the model grants from ``models``.
"""

from __future__ import annotations

import hashlib
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
_MAX_TOKEN_LEN = 4096


def token_fingerprint(token: str) -> str:
    """What the gateway may keep or log about a token: a truncated SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


class JwtVerifier:
    """Verifies ES256/RS256 JWTs against one public key; ``exp`` is mandatory."""

    def __init__(self, config: JwtConfig) -> None:
        import jwt

        if config.public_key_file is None:
            raise ConfigError("[serve.jwt] needs public_key_file")
        try:
            pem = Path(config.public_key_file).read_bytes()
            self._key = jwt.algorithms.get_default_algorithms()[config.algorithms[0]].prepare_key(pem)
        except (OSError, ValueError, KeyError, jwt.InvalidKeyError) as exc:
            raise ConfigError(f"[serve.jwt] cannot load the public key {config.public_key_file}") from exc
        self._cfg = config

    def verify(self, token: str) -> Identity:
        import jwt

        cfg = self._cfg
        options: Any = {"require": ["exp", "sub"], "verify_aud": cfg.audience is not None}
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
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("invalid JWT") from exc
        role = claims.get(cfg.role_claim)
        models = claims.get(cfg.models_claim, [])
        if role not in ROLES or not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise AuthenticationFailed("invalid JWT")
        if role == "consumer" and not models:
            raise AuthenticationFailed("invalid JWT")
        sub = str(claims["sub"])[:200]
        return Identity(id=f"jwt:{sub}", name=sub, role=role, models=tuple(models) or ("*",))


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
        self._cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()
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
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            expires, identity = hit
            if expires < self._now():
                del self._cache[key]
                return None
        if identity is None:
            raise AuthenticationFailed("invalid credentials")
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
            self._store(key, self._now() + min(_FAIL_CACHE_S, self._ttl), None)
            raise
        if self._jwt is not None and looks_like_jwt(token):
            import jwt

            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
            if isinstance(exp, int | float):
                expires_at = min(expires_at, self._now() + max(0.0, float(exp) - time.time()))
        self._store(key, expires_at, identity)
        return identity

    def _store(self, key: str, expires: float, identity: Identity | None) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (expires, identity)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_CACHE:
                self._cache.popitem(last=False)

    def authenticate(self, header: str | None) -> Identity:
        token = self.bearer(header)
        return self.cached(token) or self.verify(token)


__all__ = ["Authenticator", "JwtVerifier", "looks_like_jwt", "token_fingerprint"]

"""The one error tree of bastion.

Every failure a user can cause or meet is a subclass of :class:`BastionError`. The CLI maps each class to a
documented exit code (``exit_code``): 1 for a security finding or policy violation, 2 for a usage or runtime
error. Third-party exceptions are wrapped with ``raise ... from exc``.

::

    BastionError                      exit 2
    ├── ConfigError                   missing/invalid project home, bastion.toml, unknown settings
    ├── InvalidInput                  bad argument, malformed or oversized input file, shape/dtype mismatch
    ├── NotFound                      unknown artifact, version, identity, dataset, key
    │   └── KeyNotFound               unknown or retired key version
    ├── Conflict                      the thing already exists (versions are never overwritten)
    ├── CryptoError                   decryption or unwrapping failed (one opaque message, leaks nothing)
    │   └── WrongPassphrase           the key ring did not open with the given passphrase
    ├── AccessDenied                  identity lacks the permission (deny by default)
    │   └── AuthenticationFailed      no or invalid credentials
    ├── BudgetExhausted               a privacy budget would be exceeded
    ├── RowLimitExceeded              a request's rows do not fit the caller's row (model-query) limit
    ├── DependencyMissing             an optional extra is not installed
    ├── ServiceError                  an external service (database, Redis, HSM, Flower, URL) failed
    └── Finding                       exit 1: a security result, not a malfunction
        ├── IntegrityError            tampered bytes, bad signature, digest or Merkle mismatch
        ├── UnsafeArtifact            the scanner refused a file
        └── PolicyViolation           a measured value broke a policy threshold

Keep messages to one line, and never put secrets (passphrases, tokens, keys, raw PII) in them.
"""

from __future__ import annotations


class BastionError(Exception):
    """Root of every bastion error."""

    exit_code: int = 2

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message or self.__class__.__name__


class ConfigError(BastionError):
    """The project home or its configuration is missing or invalid."""


class InvalidInput(BastionError):
    """An argument or an input file is not acceptable."""


class NotFound(BastionError):
    """The named thing does not exist."""


class KeyNotFound(NotFound):
    """The key (or key version) does not exist or was retired."""


class Conflict(BastionError):
    """The thing already exists and is immutable."""


class CryptoError(BastionError):
    """Decryption, unwrapping or key derivation failed. The message says nothing about why."""


class WrongPassphrase(CryptoError):
    """The key ring could not be opened with this passphrase."""


class AccessDenied(BastionError):
    """The identity is not allowed to do this."""


class AuthenticationFailed(AccessDenied):
    """No credentials, or credentials that do not verify."""


class BudgetExhausted(BastionError):
    """Spending this privacy budget would exceed what the dataset allows."""


class RowLimitExceeded(BastionError):
    """A request's rows do not fit the identity's row (model-query) limit (the gateway answers 429)."""

    def __init__(self, message: str, *, retry_after_s: int, limit: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit = limit


class DependencyMissing(BastionError):
    """An optional dependency (an extra) is not installed."""


class ServiceError(BastionError):
    """An external service failed or could not be reached."""


class Finding(BastionError):
    """A security finding: the tool worked and found a problem."""

    exit_code = 1


class IntegrityError(Finding):
    """Bytes, signatures, digests or log entries do not verify."""


class UnsafeArtifact(Finding):
    """The scanner found something that could run code or is otherwise unsafe to load."""


class PolicyViolation(Finding):
    """A measured result broke a policy threshold."""


__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "BastionError",
    "BudgetExhausted",
    "ConfigError",
    "Conflict",
    "CryptoError",
    "DependencyMissing",
    "Finding",
    "IntegrityError",
    "InvalidInput",
    "KeyNotFound",
    "NotFound",
    "PolicyViolation",
    "RowLimitExceeded",
    "ServiceError",
    "UnsafeArtifact",
    "WrongPassphrase",
]

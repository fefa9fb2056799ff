"""The gateway's plug-in points, each with the contract its implementations are tested against:

* :class:`RateLimitStorage` — where rate-limit windows live (memory in one process, Redis across many);
  tests/conformance/test_rate_limit_storage.py;
* :class:`MonitorStore` — where the extraction monitor keeps per-client state (memory, Redis);
* :class:`EvidenceVerifier` — turns attestation evidence of one format into verified claims for key release
  (the software attester's verifier; an AWS Nitro or AMD SEV-SNP verifier implements the same Protocol);
  tests/conformance/test_evidence_verifiers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from bastion.serve.attestation import Claims, Evidence
    from bastion.serve.monitor_stores import ClientSnapshot


@dataclass(frozen=True)
class Window:
    """``amount`` units (requests, rows, failures) in any rolling ``seconds`` (``spec`` as written)."""

    amount: int
    seconds: float
    spec: str


@dataclass(frozen=True)
class Acquired:
    """One storage decision: ``remaining`` units after it, ``retry_after_s`` until ``cost`` would fit."""

    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimitStorage(Protocol):
    """An exact weighted sliding log per key (every admitted hit is kept with its cost for one window).

    ``acquire`` admits ``cost`` units when the units already admitted in the last ``window.seconds`` plus
    ``cost`` stay within ``window.amount``, and records them, atomically. ``cost == 0`` only asks whether
    one more unit would fit and records nothing. Implementations raise on storage failure (the limiter then
    fails closed).
    """

    def acquire(self, key: str, *, cost: int, window: Window) -> Acquired: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class MonitorStore(Protocol):
    """Where per-client monitor state lives (memory for one process, Redis for replicas)."""

    def snapshot(self, client: str) -> ClientSnapshot: ...

    def record(
        self, client: str, *, rows: np.ndarray, distances: np.ndarray, codes: np.ndarray, flag: str | None
    ) -> None: ...

    def flag(self, client: str) -> str | None: ...

    def reset(self, client: str) -> None: ...

    def clients(self) -> list[tuple[str, int, str | None]]: ...


class EvidenceVerifier(Protocol):
    """Verifies evidence of one ``format``: returns the verified claims, or raises
    :class:`~bastion.errors.IntegrityError` with one opaque message for every way it can fail (wrong format,
    untrusted or wrong signature, tampered or malformed payload), so a failure leaks nothing."""

    format: str

    def verify(self, evidence: Evidence) -> Claims: ...


__all__ = ["Acquired", "EvidenceVerifier", "MonitorStore", "RateLimitStorage", "Window"]

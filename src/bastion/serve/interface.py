"""The gateway's plug-in points: where rate-limit windows live (memory in one process, Redis across many)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


__all__ = ["Acquired", "RateLimitStorage", "Window"]

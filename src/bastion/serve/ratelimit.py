"""Per-identity moving-window rate limits, in memory or in Redis (``limits``).

Limits are written and parsed in ``limits`` notation (``100/minute``). With Redis, ``limits``'
``MovingWindowRateLimiter`` over ``RedisStorage`` shares the windows across workers and replicas. In memory,
a deque of the last ``amount`` timestamps per identity gives the same moving-window decision in O(1):
``limits``' own ``MemoryStorage`` inserts at the head of a list and re-arms an expiry thread every 10 ms,
which cost ~0.4 ms per request at gateway rates. Each identity's limit comes from its role
(``[serve.rate_limit.per_role]``); a client the extraction monitor throttles drops to ``throttled``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.errors import ServiceError
from bastion.serve.config import RateLimitConfig


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: str
    remaining: int
    retry_after_s: int


class MemoryMovingWindow:
    """Moving window in this process: allowed while fewer than ``amount`` requests fell in the window."""

    def __init__(self, *, max_keys: int = 100_000, now: Callable[[], float] = time.monotonic) -> None:
        self._windows: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._max_keys = max_keys
        self._now = now
        self._lock = threading.Lock()

    def hit(self, key: tuple[str, str], *, amount: int, seconds: float) -> tuple[bool, float]:
        """(allowed, seconds until the oldest request in the window leaves it)."""
        now = self._now()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = deque(maxlen=amount)
                while len(self._windows) > self._max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(key)
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) >= amount:
                return False, window[0] + seconds - now
            window.append(now)
            return True, 0.0

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


class RateLimiter:
    """Moving-window limits keyed by identity id. ``redis_url`` None keeps the windows in this process."""

    def __init__(self, *, config: RateLimitConfig, redis_url: str | None = None, namespace: str = "") -> None:
        from limits import parse, storage, strategies

        self._config = config
        self._memory: MemoryMovingWindow | None = None
        self._storage: Any = None
        if redis_url:
            try:
                self._storage = storage.RedisStorage(redis_url, key_prefix=f"{config.key_prefix}{namespace}")
                if not self._storage.check():
                    raise ServiceError("cannot reach the Redis server for rate limits")
            except ServiceError:
                raise
            except Exception as exc:  # redis or limits configuration errors
                raise ServiceError("cannot reach the Redis server for rate limits") from exc
            self._limiter = strategies.MovingWindowRateLimiter(self._storage)
        else:
            self._memory = MemoryMovingWindow()
        self._items = {
            spec: parse(spec) for spec in {*config.per_role.values(), config.default, config.throttled}
        }
        self._parse = parse

    def _item(self, spec: str):  # type: ignore[no-untyped-def]
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = self._parse(spec)
        return item

    def hit(self, *, identity: str, role: str, throttled: bool = False) -> RateDecision:
        spec = self._config.throttled if throttled else self._config.limit_for(role)
        item = self._item(spec)
        if self._memory is not None:
            ok, wait = self._memory.hit((spec, identity), amount=item.amount, seconds=item.get_expiry())
            return RateDecision(ok, spec, -1, 0 if ok else max(1, math.ceil(wait)))
        try:
            ok = self._limiter.hit(item, identity)
            if ok:
                return RateDecision(True, spec, -1, 0)
            stats = self._limiter.get_window_stats(item, identity)
        except Exception as exc:  # fail closed when shared storage is gone
            raise ServiceError("rate-limit storage unavailable") from exc
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return RateDecision(False, spec, int(stats.remaining), retry)

    def reset(self) -> None:
        if self._memory is not None:
            self._memory.reset()
        else:
            self._storage.reset()


__all__ = ["MemoryMovingWindow", "RateDecision", "RateLimiter"]

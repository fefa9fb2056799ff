"""Per-identity rate limits with ``limits``: in memory by default, in Redis for several workers or replicas.

Limits are written and parsed in ``limits`` notation (``100/minute``). In memory the gateway uses ``limits``'
``SlidingWindowCounterRateLimiter`` over ``MemoryStorage``: two counters per identity (this window and the
previous one, weighted by how much of it still overlaps the moving window), a few microseconds per hit
whatever the limit. ``MovingWindowRateLimiter`` over ``MemoryStorage`` keeps one list entry per request in
the window (inserted at the head, re-sliced by an expiry thread every 10 ms), which cost ~0.4 ms per request
at gateway rates with a high limit (see docs/benchmarks.md). With Redis, ``MovingWindowRateLimiter`` over
``RedisStorage`` (a sorted set per identity, exact) shares the windows across workers and replicas.
Each identity's limit comes from its role (``[serve.rate_limit.per_role]``); a client the extraction monitor
throttles drops to ``throttled``. Storage failures fail closed (:class:`~bastion.errors.ServiceError`, 503).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bastion.errors import ServiceError
from bastion.serve.config import RateLimitConfig

EXPIRY_INTERVAL_S = 1.0


def _memory_storage() -> Any:
    """``limits``' MemoryStorage whose expiry sweep runs every second instead of every 10 ms.

    The sweep only frees counters of idle identities (reads check expiry themselves, so decisions do not
    depend on it); at 10 ms ``MemoryStorage`` starts a new timer thread up to 100 times a second while
    requests arrive, which cost as much CPU as the hits themselves (docs/benchmarks.md).
    """
    import threading

    from limits.storage import MemoryStorage

    class _Storage(MemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.timer.cancel()  # the constructor's own 10 ms timer; the next hit arms the 1 s one
            self.timer.join()

        def _MemoryStorage__schedule_expiry(self) -> None:
            if not self.timer.is_alive():
                self.timer = threading.Timer(EXPIRY_INTERVAL_S, self._MemoryStorage__expire_events)  # type: ignore[attr-defined]
                self.timer.daemon = True
                self.timer.start()

    return _Storage()


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: str
    remaining: int
    retry_after_s: int


class RateLimiter:
    """Limits keyed by identity id. ``redis_url`` None keeps the counters in this process."""

    def __init__(self, *, config: RateLimitConfig, redis_url: str | None = None, namespace: str = "") -> None:
        from limits import parse, storage, strategies

        self._config = config
        self._storage: Any
        self.shared = bool(redis_url)
        if redis_url:
            try:
                self._storage = storage.RedisStorage(redis_url, key_prefix=f"{config.key_prefix}{namespace}")
                if not self._storage.check():
                    raise ServiceError("cannot reach the Redis server for rate limits")
            except ServiceError:
                raise
            except Exception as exc:  # redis or limits configuration errors
                raise ServiceError("cannot reach the Redis server for rate limits") from exc
            self._limiter: Any = strategies.MovingWindowRateLimiter(self._storage)
        else:
            self._storage = _memory_storage()
            self._limiter = strategies.SlidingWindowCounterRateLimiter(self._storage)
        self._items = {
            spec: parse(spec) for spec in {*config.per_role.values(), config.default, config.throttled}
        }
        self._parse = parse
        self._prefix = f"{namespace}:" if namespace and not redis_url else ""

    def _item(self, spec: str):  # type: ignore[no-untyped-def]
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = self._parse(spec)
        return item

    def hit(self, *, identity: str, role: str, throttled: bool = False) -> RateDecision:
        spec = self._config.throttled if throttled else self._config.limit_for(role)
        item = self._item(spec)
        key = self._prefix + identity
        try:
            if self._limiter.hit(item, key):
                return RateDecision(True, spec, -1, 0)
            stats = self._limiter.get_window_stats(item, key)
        except Exception as exc:  # fail closed when the storage is gone
            raise ServiceError("rate-limit storage unavailable") from exc
        retry = min(max(1, math.ceil(stats.reset_time - time.time())), math.ceil(item.get_expiry()))
        return RateDecision(False, spec, int(stats.remaining), retry)

    def reset(self) -> None:
        self._storage.reset()

    def close(self) -> None:
        """Stop the memory storage's expiry timer (Redis needs nothing)."""
        timer = getattr(self._storage, "timer", None)
        if timer is not None:
            timer.cancel()


__all__ = ["EXPIRY_INTERVAL_S", "RateDecision", "RateLimiter"]

"""Per-identity rate limits with the ``limits`` library (moving window), in memory or in Redis.

Redis storage shares the windows across gateway replicas; each identity's limit comes from its role
(``[serve.rate_limit.per_role]``), and a client the extraction monitor throttles drops to ``throttled``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from bastion.errors import ServiceError
from bastion.serve.config import RateLimitConfig


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: str
    remaining: int
    retry_after_s: int


class RateLimiter:
    """Moving-window limits keyed by identity id. ``redis_url`` None keeps the windows in this process."""

    def __init__(self, *, config: RateLimitConfig, redis_url: str | None = None, namespace: str = "") -> None:
        from limits import parse, storage, strategies

        self._config = config
        self._storage: storage.RedisStorage | storage.MemoryStorage
        if redis_url:
            try:
                self._storage = storage.RedisStorage(redis_url, key_prefix=f"{config.key_prefix}{namespace}")
                if not self._storage.check():
                    raise ServiceError("cannot reach the Redis server for rate limits")
            except ServiceError:
                raise
            except Exception as exc:  # redis or limits configuration errors
                raise ServiceError("cannot reach the Redis server for rate limits") from exc
        else:
            self._storage = storage.MemoryStorage()
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)
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
        self._storage.reset()


__all__ = ["RateDecision", "RateLimiter"]

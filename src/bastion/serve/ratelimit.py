"""Exact rate limits for the gateway: requests and rows (model queries) per identity, requests and
authentication failures per client address. In memory for one process, in Redis across workers and replicas.

Algorithm: a weighted *sliding log* (the "moving window" of Redis' rate-limiting patterns and of ``limits``'
``MovingWindowRateLimiter``): every admitted hit is kept with its cost and timestamp for one window, and a hit
is admitted only when the costs in the last ``seconds`` plus its own stay within ``amount``. Unlike the
two-counter sliding-window approximation (which let 195 requests through one rolling 60 s window under a
100/minute limit) it is exact for every rolling window, and a batch of 256 rows costs 256 against a row limit,
so ``requests × rows per request`` cannot exceed the row budget. Memory is one entry per admitted *request*
(not per row): at most ``amount`` entries per request key, and per row key at most one per admitted request.

Keys (``limits`` notation specs from :class:`~bastion.serve.config.RateLimitConfig`):

* ``req:<identity>`` — ``per_role`` (``throttled`` once the extraction monitor throttles the client);
* ``rows:<identity>`` — ``rows_per_role`` (``throttled_rows``), charged with the request's batch size;
* ``addr:<address>`` — ``per_address``, charged before authentication (unauthenticated traffic is bounded);
* ``fail:<address>`` — ``auth_failures``: once exhausted, the address is refused before any token lookup.

The memory store keeps at most ``max_keys`` address keys and ``max_keys`` identity keys in separate tables
and never evicts a key whose window is live (a new key is refused instead when a table is full), so
unauthenticated traffic cannot evict an identity's log. The Redis store runs one Lua
script per hit (atomic, Redis server time). Storage failures fail closed
(:class:`~bastion.errors.ServiceError`, 503). :meth:`RateLimiter.hit` and :meth:`RateLimiter.rows` are the
API the extraction monitor relies on.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.errors import ConfigError, ServiceError
from bastion.serve.config import RateLimitConfig
from bastion.serve.interface import Acquired, RateLimitStorage, Window


def parse_window(spec: str) -> Window:
    """A ``limits``-notation spec (``100/minute``, ``25600 per 1 minute``) as a :class:`Window`."""
    from limits import parse

    try:
        item = parse(str(spec))
    except ValueError as exc:
        raise ConfigError(f"not a rate limit: {spec!r}") from exc
    return Window(amount=int(item.amount), seconds=float(item.get_expiry()), spec=str(spec))


class _Log:
    __slots__ = ("entries", "expires", "used")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.used = 0
        self.expires = 0.0  # when the newest admitted entry leaves its window


#: Keys of unauthenticated traffic (per client address); every other key belongs to an identity.
_UNAUTHENTICATED = ("addr:", "fail:")


class MemoryRateLimitStorage:
    """Sliding logs in this process (thread-safe); ``now`` is injectable for tests.

    Two tables of at most ``max_keys`` keys each: one for client-address keys (``addr:``/``fail:``), one
    for identity keys, so a flood from many addresses can never push an identity's log out. A key whose
    window still holds an admitted hit is never evicted: when a table is full of live windows a *new* key
    is refused (treated as limited) instead. A hit of cost 0 on an unknown key only checks, creating none.
    """

    def __init__(self, *, max_keys: int = 100_000, now: Callable[[], float] = time.monotonic) -> None:
        self._tables: dict[bool, OrderedDict[str, _Log]] = {True: OrderedDict(), False: OrderedDict()}
        self._lock = threading.Lock()
        self._max = max_keys
        self._now = now

    def _log(self, key: str, now: float, *, create: bool) -> _Log | None:
        table = self._tables[key.startswith(_UNAUTHENTICATED)]
        log = table.get(key)
        if log is not None:
            table.move_to_end(key)
            return log
        if not create:
            return None
        while len(table) >= self._max:
            oldest = next(iter(table.values()))
            if oldest.expires > now:  # least recently used, and still live: every key is
                return None
            table.popitem(last=False)
        log = table[key] = _Log()
        return log

    def acquire(self, key: str, *, cost: int, window: Window) -> Acquired:
        now = self._now()
        horizon = now - window.seconds
        with self._lock:
            log = self._log(key, now, create=cost > 0)
            if log is None:
                if cost <= 0:  # nothing recorded for this key: a check of cost 0 finds the window empty
                    return Acquired(window.amount >= 1, window.amount, 0.0)
                return Acquired(False, 0, window.seconds)  # table full of live windows: refuse, evict none
            entries = log.entries
            while entries and entries[0][0] <= horizon:
                log.used -= entries.popleft()[1]
            if log.used + max(cost, 1) <= window.amount:
                if cost > 0:
                    entries.append((now, cost))
                    log.used += cost
                    log.expires = max(log.expires, now + window.seconds)
                return Acquired(True, window.amount - log.used, 0.0)
            return Acquired(
                False, max(0, window.amount - log.used), _retry(entries, log.used, cost, window, now)
            )

    def reset(self) -> None:
        with self._lock:
            for table in self._tables.values():
                table.clear()

    def close(self) -> None:
        self.reset()

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())


def _retry(entries: Any, used: int, cost: int, window: Window, now: float) -> float:
    """Seconds until enough of the oldest entries leave the window for ``cost`` to fit."""
    need = used + max(cost, 1) - window.amount
    if max(cost, 1) > window.amount:
        return window.seconds
    freed = 0
    for ts, c in entries:
        freed += c
        if freed >= need:
            return max(0.0, ts + window.seconds - now)
    return window.seconds


_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], ':(%d+)$'))
end
local want = math.max(cost, 1)
if used + want <= amount then
  if cost > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. cost)
    redis.call('PEXPIRE', KEYS[1], window)
    used = used + cost
  end
  return {1, amount - used, 0}
end
local retry = window
if want <= amount then
  local need = used + want - amount
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if freed >= need then
      retry = tonumber(entries[i + 1]) + window - now
      break
    end
  end
end
return {0, math.max(0, amount - used), retry}
"""


class RedisRateLimitStorage:
    """Sliding logs as Redis sorted sets (one Lua script per hit: atomic across workers and replicas)."""

    def __init__(self, url: str, *, key_prefix: str) -> None:
        import redis

        try:
            self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            self._client.ping()
            self._script = self._client.register_script(_LUA)
        except Exception as exc:  # redis raises its own connection and URL errors
            raise ServiceError("cannot reach the Redis server for rate limits") from exc
        self._prefix = key_prefix

    def acquire(self, key: str, *, cost: int, window: Window) -> Acquired:
        ms = max(1, int(window.seconds * 1000))
        nonce = secrets.token_hex(8)
        allowed, remaining, retry = self._script(
            keys=[f"{self._prefix}:{key}"], args=[ms, window.amount, cost, nonce]
        )
        return Acquired(bool(allowed), int(remaining), float(retry) / 1000.0)

    def reset(self) -> None:
        for key in self._client.scan_iter(match=f"{self._prefix}:*"):
            self._client.delete(key)

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class RateDecision:
    """``kind``: which limit decided (``requests``, ``rows``, ``address``, ``auth-failures``)."""

    allowed: bool
    limit: str
    remaining: int
    retry_after_s: int
    kind: str = "requests"


class RateLimiter:
    """The gateway's limits over one storage (``redis_url`` None keeps them in this process)."""

    def __init__(
        self,
        *,
        config: RateLimitConfig,
        redis_url: str | None = None,
        namespace: str = "",
        storage: RateLimitStorage | None = None,
    ) -> None:
        self._config = config
        self.shared = storage is not None or bool(redis_url)
        if storage is not None:
            self._storage: RateLimitStorage = storage
        elif redis_url:
            self._storage = RedisRateLimitStorage(redis_url, key_prefix=f"{config.key_prefix}{namespace}")
        else:
            self._storage = MemoryRateLimitStorage(max_keys=config.max_keys)
            self.shared = False
        self._windows: dict[str, Window] = {}
        self._prefix = f"{namespace}:" if namespace and not redis_url else ""

    def _window(self, spec: str) -> Window:
        window = self._windows.get(spec)
        if window is None:
            window = self._windows[spec] = parse_window(spec)
        return window

    def _acquire(self, key: str, spec: str, cost: int, kind: str) -> RateDecision:
        window = self._window(spec)
        tag, _, rest = key.partition(":")  # the kind tag first: the storage tells address keys by it
        try:
            got = self._storage.acquire(f"{tag}:{self._prefix}{rest}", cost=cost, window=window)
        except Exception as exc:  # fail closed when the storage is gone
            raise ServiceError("rate-limit storage unavailable") from exc
        if got.allowed:
            return RateDecision(True, spec, got.remaining, 0, kind)
        retry = min(max(1, math.ceil(got.retry_after_s)), max(1, math.ceil(window.seconds)))
        return RateDecision(False, spec, got.remaining, retry, kind)

    def hit(self, *, identity: str, role: str, throttled: bool = False) -> RateDecision:
        """One request of an authenticated identity (limit by role, or ``throttled``)."""
        spec = self._config.throttled if throttled else self._config.limit_for(role)
        return self._acquire(f"req:{identity}", spec, 1, "requests")

    def rows(self, *, identity: str, role: str, rows: int, throttled: bool = False) -> RateDecision:
        """``rows`` model queries of one request, charged against the identity's row limit."""
        if rows < 1:
            raise ValueError("rows must be positive")
        spec = self._config.throttled_rows if throttled else self._config.rows_for(role)
        return self._acquire(f"rows:{identity}", spec, rows, "rows")

    def address(self, address: str) -> RateDecision:
        """One request from a client address, before authentication; also refuses an address that has
        used up its authentication failures (no token lookup for it until the window moves on)."""
        failures = self._acquire(f"fail:{address}", self._config.auth_failures, 0, "auth-failures")
        if not failures.allowed:
            return failures
        return self._acquire(f"addr:{address}", self._config.per_address, 1, "address")

    def auth_failure(self, address: str) -> None:
        """Charge one failed authentication to an address."""
        self._acquire(f"fail:{address}", self._config.auth_failures, 1, "auth-failures")

    def reset(self) -> None:
        self._storage.reset()

    def close(self) -> None:
        self._storage.close()


__all__ = [
    "MemoryRateLimitStorage",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimitStorage",
    "parse_window",
]

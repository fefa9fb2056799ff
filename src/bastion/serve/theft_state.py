"""Theft-detector state shared by gateway workers and replicas (issue 20): one consumer, one stream.

:class:`RedisTheftStore` keeps each consumer's detection state (the window of shift percentiles and
small-step marks, the ring of its recent distinct rows, the exact-repeat digests, row counts, daily budget and
flag) in Redis, and :class:`~bastion.serve.theft.TheftDefence` reads, updates and writes it back under a
Redis lock per consumer, so an attacker who alternates between workers is judged on its combined stream,
exactly as one process would judge it. The state is serialised with :func:`numpy.savez` (arrays and one
JSON field, ``allow_pickle=False``: nothing read from Redis is unpickled). What stays per process: the
recorded watermark probes (evidence is exported per worker) and the PRADA/coverage monitor, which has its
own :class:`~bastion.serve.interface.MonitorStore`.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bastion.errors import ServiceError


def dump_state(s: Any) -> bytes:
    """One consumer's detection state (a ``theft._Consumer``) as bytes (no pickle)."""
    flag = None if s.flag is None else s.flag.to_dict()
    seen = np.frombuffer(b"".join(s.seen), dtype=np.uint8).reshape(-1, 16)
    buf = io.BytesIO()
    np.savez(
        buf,
        pct=np.asarray(list(s.pct), dtype=np.float64),
        apct=np.asarray(list(s.apct), dtype=np.float64),
        near=np.asarray(list(s.near), dtype=bool),
        mix=np.asarray(list(s.mix), dtype=bool),
        hist=s.hist,
        meta=np.asarray([s.hist_n, s.rows, s.rows_day, s.day], dtype=np.int64),
        hours=np.asarray(s.hours, dtype=np.int64),
        bits=np.asarray([s.bits], dtype=np.float64),
        seen=seen,
        flag=np.frombuffer(json.dumps(flag).encode("utf-8"), dtype=np.uint8),
    )
    return buf.getvalue()


def load_state(blob: bytes, s: Any, flag_type: Any) -> Any:
    """Fill the fresh state ``s`` from :func:`dump_state`'s bytes; damaged state fails closed."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            s.pct.extend(float(v) for v in z["pct"])
            # the rank view's percentiles (state written before round 7 has none: the raw ones stand in)
            s.apct.extend(float(v) for v in z["apct" if "apct" in z.files else "pct"])
            s.near.extend(bool(v) for v in z["near"])
            if "mix" in z.files:  # the mixtures test's flags (round 9; older state starts it empty)
                s.mix.extend(bool(v) for v in z["mix"])
            hist = z["hist"]
            if hist.shape != s.hist.shape:
                raise ValueError("history shape")
            s.hist[:] = hist
            s.hist_n, s.rows, s.rows_day, s.day = (int(v) for v in z["meta"])
            if "hours" in z.files:  # the budget's hourly buckets (round 8; before, ``day`` was a UTC day)
                if z["hours"].shape != s.hours.shape:
                    raise ValueError("budget buckets")
                s.hours[:] = z["hours"]
            else:
                s.day = -1  # roll_budget counts the stored day's rows in the current hour
            s.bits = float(z["bits"][0])
            for row in z["seen"]:
                s.seen[bytes(row)] = None
            flag = json.loads(bytes(z["flag"]).decode("utf-8"))
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise ServiceError("theft-detector state in the shared store is damaged") from exc
    s.flag = None if flag is None else flag_type(**flag)
    return s


class RedisTheftStore:
    """Per-consumer theft-detector state in Redis, with a lock per consumer (every replica sees every row)."""

    def __init__(self, *, url: str, prefix: str = "bastion-theft", ttl_s: int = 2 * 86400) -> None:
        import redis

        self._prefix = prefix
        self._ttl = int(ttl_s)
        try:
            self._redis = redis.Redis.from_url(url)
            self._redis.ping()
        except redis.RedisError as exc:
            raise ServiceError("cannot reach the Redis server for the theft defence") from exc

    def _key(self, consumer: str, part: str = "state") -> str:
        return f"{self._prefix}:{part}:{consumer}"

    @contextlib.contextmanager
    def lock(self, consumers: Sequence[str]) -> Iterator[None]:
        """Hold every consumer's lock (taken in sorted order: two workers never wait on each other)."""
        import redis

        held = []
        try:
            for c in sorted(set(consumers)):
                lk = self._redis.lock(self._key(c, "lock"), timeout=30, blocking_timeout=30)
                if not lk.acquire():
                    raise ServiceError("theft-detector state busy (Redis lock)")
                held.append(lk)
            yield
        except redis.RedisError as exc:
            raise ServiceError("theft-detector state unavailable (Redis)") from exc
        finally:
            for lk in reversed(held):
                with contextlib.suppress(redis.RedisError):
                    lk.release()

    def load(self, consumer: str) -> bytes | None:
        import redis

        try:
            value = self._redis.get(self._key(consumer))
        except redis.RedisError as exc:
            raise ServiceError("theft-detector state unavailable (Redis)") from exc
        return value if isinstance(value, bytes) else None

    def save(self, consumer: str, blob: bytes) -> None:
        import redis

        try:
            self._redis.set(self._key(consumer), blob, ex=self._ttl)
        except redis.RedisError as exc:
            raise ServiceError("theft-detector state unavailable (Redis)") from exc

    def consumers(self) -> list[str]:
        import redis

        head = len(self._key(""))
        try:
            return sorted(k.decode()[head:] for k in self._redis.scan_iter(match=self._key("*"), count=500))
        except redis.RedisError as exc:
            raise ServiceError("theft-detector state unavailable (Redis)") from exc

    def delete(self, consumer: str) -> None:
        import redis

        try:
            self._redis.delete(self._key(consumer))
        except redis.RedisError as exc:
            raise ServiceError("theft-detector state unavailable (Redis)") from exc


__all__ = ["RedisTheftStore", "dump_state", "load_state"]

"""Where the extraction monitor keeps per-client state (:class:`~bastion.serve.interface.MonitorStore`):
ring buffers in this process (:class:`MemoryMonitorStore`) or capped Redis lists shared by every gateway
replica (:class:`RedisMonitorStore`). Both keep the newest ``history`` rows, ``distance_window`` distances and
``coverage_window`` codes per client, the count of every row and the first flag (sticky until reset); the
contract is tested for both in tests/conformance/test_monitor_stores.py.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import ServiceError
from bastion.serve.config import MonitorConfig


@dataclass(frozen=True)
class ClientSnapshot:
    history: np.ndarray  # (k, d) float32, k <= history
    distances: np.ndarray  # (m,) float64, m <= distance_window, oldest first
    codes: np.ndarray  # (c,) int64, c <= coverage_window, oldest first
    count: int
    flag: str | None
    history_sq: np.ndarray | None = (
        None  # cached squared norms of ``history`` rows, when the store keeps them
    )


class _Ring:
    """A fixed-size ring of rows; order does not matter to the statistics that read it."""

    __slots__ = ("data", "filled", "pos")

    def __init__(self, size: int, width: int | None, dtype: Any) -> None:
        shape = (size,) if width is None else (size, width)
        self.data = np.zeros(shape, dtype=dtype)
        self.pos = 0
        self.filled = 0

    def push(self, values: np.ndarray) -> None:
        size = self.data.shape[0]
        for value in values[-size:]:
            self.data[self.pos] = value
            self.pos = (self.pos + 1) % size
            self.filled = min(self.filled + 1, size)

    def view(self) -> np.ndarray:
        return self.data[: self.filled]

    def ordered(self) -> np.ndarray:
        """Oldest first."""
        if self.filled < self.data.shape[0]:
            return self.data[: self.filled]
        return np.concatenate([self.data[self.pos :], self.data[: self.pos]])


class _MemoryClient:
    __slots__ = ("codes", "count", "distances", "flag", "history", "norms")

    def __init__(self, cfg: MonitorConfig, width: int) -> None:
        self.history = _Ring(cfg.history, width, np.float32)
        self.norms = _Ring(cfg.history, None, np.float32)
        self.distances = _Ring(cfg.distance_window, None, np.float64)
        self.codes = _Ring(cfg.coverage_window, None, np.int64)
        self.count = 0
        self.flag: str | None = None


class MemoryMonitorStore:
    """Per-client ring buffers in this process; the least recently seen beyond ``max_clients`` are dropped."""

    def __init__(self, *, config: MonitorConfig, n_features: int, max_clients: int = 2048) -> None:
        self._cfg = config
        self._width = n_features
        self._max = max_clients
        self._clients: OrderedDict[str, _MemoryClient] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, client: str) -> _MemoryClient:
        state = self._clients.get(client)
        if state is None:
            state = _MemoryClient(self._cfg, self._width)
            self._clients[client] = state
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        return state

    def snapshot(self, client: str) -> ClientSnapshot:
        with self._lock:
            if client not in self._clients:  # reading never creates state (as in Redis)
                return ClientSnapshot(
                    np.zeros((0, self._width), np.float32),
                    np.zeros(0, np.float64),
                    np.zeros(0, np.int64),
                    0,
                    None,
                    np.zeros(0, np.float32),
                )
            s = self._get(client)
            return ClientSnapshot(
                s.history.view(), s.distances.ordered(), s.codes.ordered(), s.count, s.flag, s.norms.view()
            )

    def record(
        self, client: str, *, rows: np.ndarray, distances: np.ndarray, codes: np.ndarray, flag: str | None
    ) -> None:
        with self._lock:
            s = self._get(client)
            s.history.push(rows)
            s.norms.push(np.einsum("ij,ij->i", rows, rows))
            s.distances.push(distances)
            s.codes.push(codes)
            s.count += len(rows)
            if flag and not s.flag:
                s.flag = flag

    def flag(self, client: str) -> str | None:
        with self._lock:
            state = self._clients.get(client)
            return state.flag if state else None

    def reset(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def clients(self) -> list[tuple[str, int, str | None]]:
        with self._lock:
            return [(name, s.count, s.flag) for name, s in self._clients.items()]


class RedisMonitorStore:
    """Monitor state in Redis lists, capped like the memory rings, so every replica sees every query."""

    def __init__(
        self, *, config: MonitorConfig, n_features: int, url: str, prefix: str | None = None
    ) -> None:
        import redis

        self._cfg = config
        self._width = n_features
        self._prefix = prefix or config.key_prefix
        try:
            self._redis = redis.Redis.from_url(url)
            self._redis.ping()
        except redis.RedisError as exc:
            raise ServiceError("cannot reach the Redis server for the extraction monitor") from exc

    def _key(self, client: str, part: str) -> str:
        return f"{self._prefix}:{client}:{part}"

    def shared_secret(self) -> bytes:
        """A random 32-byte monitor key kept in Redis (created once, ``SET NX``), so every replica draws the
        same secret hyperplanes when the deployment gives no key of its own."""
        import redis

        name = f"{self._prefix}:planes-secret"
        try:
            self._redis.set(name, os.urandom(32), nx=True)
            value = self._redis.get(name)
        except redis.RedisError as exc:
            raise ServiceError("extraction monitor state unavailable (Redis)") from exc
        if not isinstance(value, bytes) or len(value) != 32:
            raise ServiceError("the extraction monitor's shared secret in Redis is damaged")
        return value

    def snapshot(self, client: str) -> ClientSnapshot:
        import redis

        try:
            pipe = self._redis.pipeline(transaction=False)
            for part in ("hist", "dist", "codes"):
                pipe.lrange(self._key(client, part), 0, -1)
            pipe.get(self._key(client, "count"))
            pipe.get(self._key(client, "flag"))
            hist, dist, codes, count, flag = pipe.execute()
        except redis.RedisError as exc:
            raise ServiceError("extraction monitor state unavailable (Redis)") from exc
        history = (
            np.frombuffer(b"".join(hist), dtype=np.float32).reshape(-1, self._width)
            if hist
            else np.zeros((0, self._width), np.float32)
        )
        return ClientSnapshot(
            history,
            np.array([float(v) for v in reversed(dist)], dtype=np.float64),  # LPUSH: newest first
            np.array([int(v) for v in reversed(codes)], dtype=np.int64),
            int(count or 0),
            flag.decode() if flag else None,
        )

    def record(
        self, client: str, *, rows: np.ndarray, distances: np.ndarray, codes: np.ndarray, flag: str | None
    ) -> None:
        import redis

        cfg = self._cfg
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.lpush(self._key(client, "hist"), *[r.astype(np.float32).tobytes() for r in rows])
            pipe.ltrim(self._key(client, "hist"), 0, cfg.history - 1)
            if len(distances):
                pipe.lpush(self._key(client, "dist"), *[repr(float(d)) for d in distances])
                pipe.ltrim(self._key(client, "dist"), 0, cfg.distance_window - 1)
            pipe.lpush(self._key(client, "codes"), *[int(c) for c in codes])
            pipe.ltrim(self._key(client, "codes"), 0, cfg.coverage_window - 1)
            pipe.incrby(self._key(client, "count"), len(rows))
            pipe.sadd(f"{self._prefix}:clients", client)
            if flag:
                pipe.setnx(self._key(client, "flag"), flag)
            pipe.execute()
        except redis.RedisError as exc:
            raise ServiceError("extraction monitor state unavailable (Redis)") from exc

    def flag(self, client: str) -> str | None:
        import redis

        try:
            value = self._redis.get(self._key(client, "flag"))
        except redis.RedisError as exc:
            raise ServiceError("extraction monitor state unavailable (Redis)") from exc
        return value.decode() if isinstance(value, bytes) else None

    def reset(self, client: str) -> None:
        self._redis.delete(*[self._key(client, p) for p in ("hist", "dist", "codes", "count", "flag")])
        self._redis.srem(f"{self._prefix}:clients", client)

    def clients(self) -> list[tuple[str, int, str | None]]:
        out = []
        for raw in sorted(self._redis.smembers(f"{self._prefix}:clients")):  # type: ignore[union-attr]
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            count = self._redis.get(self._key(name, "count"))
            out.append((name, int(count or 0), self.flag(name)))  # type: ignore[arg-type]
        return out


__all__ = ["ClientSnapshot", "MemoryMonitorStore", "RedisMonitorStore"]

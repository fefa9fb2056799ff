"""The guarded proxy's settings (:class:`ProxyConfig`) and its tokens-per-minute budget per identity
(:class:`TokenBudget`); :mod:`bastion.serve.guard_proxy` re-exports both."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import ConfigError
from bastion.guard.policy import PolicyConfig

MODES = ("block", "redact", "shadow")


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str
    mode: str = "block"
    requests_per_minute: Mapping[str, str] = field(default_factory=dict)  # role -> "100/minute"
    tokens_per_minute: Mapping[str, int] = field(default_factory=lambda: {"consumer": 20_000})
    default_tokens_per_minute: int = 100_000
    output: PolicyConfig = field(default_factory=PolicyConfig)
    canaries: tuple[str, ...] = ()
    system_prompt: str | None = None
    max_body_bytes: int = 1 << 20
    upstream_timeout_s: float = 60.0
    upstream_api_key: str | None = None
    unsafe_fail_open: bool = False
    session_header: str = "x-bastion-session"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}")
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError("--upstream must be an http(s) URL")


class TokenBudget:
    """Tokens per minute per identity: a sliding-window counter (this minute's count plus the previous
    minute's, weighted by how much of it still overlaps the last 60 s), in memory, thread-safe, no timers."""

    def __init__(self, *, window_s: float = 60.0, max_keys: int = 100_000, now: Any = time.monotonic) -> None:
        self._w, self._max, self._now = window_s, max_keys, now
        self._counts: dict[str, tuple[int, float, float]] = {}  # key -> (window index, previous, current)
        self._lock = threading.Lock()

    def take(self, key: str, cost: int, *, per_minute: int) -> bool:
        t = self._now()
        idx = int(t // self._w)
        frac = (t % self._w) / self._w
        with self._lock:
            w, prev, cur = self._counts.get(key, (idx, 0.0, 0.0))
            if idx != w:
                prev, cur = (cur if idx == w + 1 else 0.0), 0.0
            used = prev * (1.0 - frac) + cur
            if cost > per_minute or used + cost > per_minute:
                self._counts[key] = (idx, prev, cur)
                return False
            if len(self._counts) >= self._max and key not in self._counts:
                self._counts.clear()  # bounded memory; forgetting only ever lets callers through sooner
            self._counts[key] = (idx, prev, cur + cost)
            return True

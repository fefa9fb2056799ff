"""What a page view may cost: the audit log's verification cached by its head, the hunt rate-limited.

Every overview and log page shows the log's verification state, and verifying recomputes the whole Merkle
tree: without a cache, a viewer reloading a page (or a script with a session) makes the dashboard re-read the
whole log each time. :class:`VerifyCache` verifies once per signed tree head (size and root) and re-verifies
the same head after ``ttl_s`` (an entry rewritten in place, which leaves the signed head as it was, shows as
FAILED within that time), and at most once per ``min_interval_s`` while the head keeps moving (the last
result, of a head at most that old, is shown meanwhile). A failed verification (an exception) is never
cached. One verification runs at a time; concurrent views wait for it instead of starting their own.

:class:`Throttled` does the same for the hunting page's context (a hunt over the event store): computed at
most once per ``min_interval_s`` for all viewers (every dashboard viewer is an auditor or above and sees
the same page), one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


class VerifyCache:
    """Shared by the sessions of one dashboard: :meth:`wrap` gives a session's vault a cached
    ``log_verify``."""

    def __init__(
        self, *, ttl_s: float = 60.0, min_interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s, self.min_interval_s = ttl_s, min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._head: tuple[int, bytes] | None = None
        self._result: Any = None
        self._at = float("-inf")
        self.runs = 0

    def wrap(self, vault: Any) -> Any:
        return _CachedVault(vault, self)

    def verify(self, vault: Any) -> Any:
        with self._lock:  # one verification at a time; the others wait and take its result
            head = vault.log_head()
            key = (int(head.size), bytes(head.root_hash))
            now = self._clock()
            fresh = self._result is not None and now - self._at < self.ttl_s
            if fresh and (key == self._head or now - self._at < self.min_interval_s):
                return self._result
            result = vault.log_verify()  # raises on a failed verification: not cached
            self.runs += 1
            self._head, self._result, self._at = key, result, self._clock()
            return result


class _CachedVault:
    """A session's vault with ``log_verify`` answered by a :class:`VerifyCache`; everything else passes
    through."""

    def __init__(self, vault: Any, cache: VerifyCache) -> None:
        self._vault, self._cache = vault, cache

    def log_verify(self) -> Any:
        return self._cache.verify(self._vault)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vault, name)


class Throttled:
    """``fn(vault) -> context`` computed at most once per ``min_interval_s`` (for every viewer)."""

    def __init__(
        self,
        fn: Callable[[Any], Mapping[str, Any]],
        *,
        min_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fn, self.min_interval_s, self._clock = fn, min_interval_s, clock
        self._lock = threading.Lock()
        self._value: Mapping[str, Any] | None = None
        self._at = float("-inf")
        self.runs = 0

    def __call__(self, vault: Any) -> Mapping[str, Any]:
        with self._lock:
            if self._value is not None and self._clock() - self._at < self.min_interval_s:
                return self._value
            value = self._fn(vault)
            self.runs += 1
            self._value, self._at = value, self._clock()
            return value


__all__ = ["Throttled", "VerifyCache"]

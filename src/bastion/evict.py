"""A capped per-consumer table whose eviction takes the least valuable entry, not the oldest.

A plain LRU cap lets a flood of throw-away identities (one row each) push a thief's state out: its
evidence, flag and budget. :class:`ValueTable` keeps the LRU order (``move_to_end`` still works), but
:meth:`ValueTable.evict` removes the least valuable of ``sample`` entries drawn uniformly (a keyed
generator), so a flood of small entries evicts only its own kind: an entry is evicted only when every other
drawn entry is worth at least as much. The work per eviction is bounded (``sample`` draws), and so is the
memory (the sampling index is compacted when removals made elsewhere leave it stale).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

SAMPLE = 32


class ValueTable(OrderedDict[K, V], Generic[K, V]):
    """An ``OrderedDict`` with :meth:`evict` (the least ``value`` of a keyed uniform sample of entries)."""

    def __init__(self, value: Callable[[V], Any], *, seed: int, sample: int = SAMPLE) -> None:
        super().__init__()
        self._value = value
        self._sample = max(1, int(sample))
        self._rng = random.Random(int(seed))
        self._keys: list[K] = []  # every key, for uniform draws (stale ones are dropped when drawn)
        self._pos: dict[K, int] = {}

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self._pos:
            self._pos[key] = len(self._keys)
            self._keys.append(key)
        super().__setitem__(key, value)

    def __reduce__(self) -> Any:  # no pickling/copying of the index: a plain OrderedDict of the entries
        return (OrderedDict, (list(self.items()),))

    def _drop(self, key: K) -> None:
        i = self._pos.pop(key)
        last = self._keys.pop()
        if i < len(self._keys):
            self._keys[i] = last
            self._pos[last] = i

    def _compact(self) -> None:
        if len(self._keys) > 2 * len(self) + 64:
            self._keys = list(self.keys())
            self._pos = {k: i for i, k in enumerate(self._keys)}

    def evict(self, *, keep: K | None = None) -> K | None:
        """Remove and return the least valuable of ``sample`` drawn entries (never ``keep``: the entry just
        made); ties go to the earliest drawn. ``None`` if nothing but ``keep`` is left."""
        self._compact()
        best: K | None = None
        best_value: Any = None
        drawn = 0
        for _ in range(4 * self._sample):
            if drawn >= self._sample or not self._keys:
                break
            key = self._keys[self._rng.randrange(len(self._keys))]
            if key not in self:  # removed elsewhere (``pop``): drop it from the index
                self._drop(key)
                continue
            if key == keep:
                if len(self) == 1:
                    break
                continue
            drawn += 1
            v = self._value(super().__getitem__(key))
            if best is None or v < best_value:
                best, best_value = key, v
        if best is None:  # only stale draws: the oldest entry that is not ``keep``
            best = next((k for k in self if k != keep), None)
            if best is None:
                return None
        del self[best]
        if best in self._pos:
            self._drop(best)
        return best

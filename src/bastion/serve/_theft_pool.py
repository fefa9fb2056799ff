"""Newcomers judged together (issue 20, round 7, attack20 F6: a Sybil split).

A consumer is judged on its own only from ``min_rows`` distinct rows, so an attacker with many accounts, each
below ``min_rows`` and each from its own address, was never judged: 69 accounts x 29 mixup rows gave a 0.956
copy with no flag. While an identity has fewer than ``min_rows`` distinct rows it is therefore also joined
with one pooled consumer, :data:`NEWCOMERS`, judged by the same tests over the first :data:`POOL_ROWS` rows
of every newcomer that are new to the pool (a repeat or a re-send of a pooled row does not use the quota, so
padding an account with them hides nothing). A flag on the pool gives every newcomer the response of a
flagged shared address (:mod:`bastion.serve.theft`) until its own ``min_rows`` rows look natural; an
unflagged pool changes nothing. One client alone adds at most :data:`POOL_ROWS` rows, so a single attacker
(flagged on its own) does not flag the pool for everyone after it; natural newcomers do not move it.

Cost: while the pool is flagged (a Sybil attack, and ``flag_ttl_s`` after its last evidence) every new
account's first ``min_rows`` distinct rows get the flagged response. Limits: the quota is per process
(with a shared store, up to :data:`POOL_ROWS` x workers rows per account); an account whose first
:data:`POOL_ROWS` rows are novel natural rows is not judged on the rest of its ``min_rows`` (the attacker
pays one natural row for every ~3 synthetic ones).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bastion.serve._theft_policy import Flag
from bastion.serve.theft_state import load_state

if TYPE_CHECKING:
    from bastion.serve.theft import TheftDefence

NEWCOMERS = "pool:newcomers"
POOL_ROWS = 10  # the pool counts each newcomer's first rows only: one client alone cannot flag it


class NewcomerQuota:
    """How many rows each newcomer has added to the pool (at most :data:`POOL_ROWS`), per process."""

    def __init__(self, *, max_identities: int, rows: int = POOL_ROWS) -> None:
        self.rows = int(rows)
        self._added: OrderedDict[str, int] = OrderedDict()
        self._max = int(max_identities)
        self._lock = threading.Lock()

    def take(self, identity: str, counted: np.ndarray) -> np.ndarray:
        """``counted`` (the rows new to the pool: not a repeat nor a re-send of a pooled row) cut to the
        identity's remaining quota, in order: padding with repeats or re-sends does not use it up."""
        with self._lock:
            added = self._added.pop(identity, 0)
            out = np.asarray(counted, dtype=bool).copy()
            out[np.flatnonzero(out)[max(0, self.rows - added) :]] = False
            self._added[identity] = added + int(out.sum())
            while len(self._added) > self._max:
                self._added.popitem(last=False)
            return out


def distinct_rows(defence: TheftDefence, consumer: str) -> int:
    """How many distinct rows ``consumer`` has in its window so far (0 if unknown), without touching it."""
    if defence._store is not None:
        blob = defence._store.load(consumer)
        return 0 if blob is None else len(load_state(blob, defence._new(), Flag).pct)
    s = defence._table(consumer).get(consumer)
    return 0 if s is None else len(s.pct)


def with_newcomers(defence: TheftDefence, consumers: Sequence[str]) -> tuple[str, ...]:
    """``consumers`` (identity first), joined with :data:`NEWCOMERS` while the identity is a newcomer."""
    joined = tuple(consumers)
    if not joined or joined[0].startswith("addr:") or NEWCOMERS in joined:
        return joined
    if distinct_rows(defence, joined[0]) >= defence.policy.min_rows:
        return joined
    return (*joined, NEWCOMERS)


__all__ = ["NEWCOMERS", "distinct_rows", "with_newcomers"]

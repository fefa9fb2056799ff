"""The admin and evidence side of :class:`bastion.serve.theft.TheftDefence` (a mixin, its base): current
flags, each consumer's recorded probes, the MAC'd watermark and label-mark evidence, and resets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.serve._theft_judge import _Consumer, _TheftJudge
from bastion.serve._theft_policy import Flag
from bastion.serve.monitor import ExtractionMonitor
from bastion.serve.theft_state import load_state

# what an admin reset clears: the detection windows, the recent distinct rows, the re-send digests, the flag
_SUSPICION = frozenset({"apct", "flag", "hist", "hist_n", "mix", "nat", "near", "pct", "seen"})


class _TheftAdmin(_TheftJudge):
    """Flags, probes and evidence export of :class:`~bastion.serve.theft.TheftDefence`."""

    watermark: Any
    labels: Any
    monitor: ExtractionMonitor
    _clock: Callable[[], float]

    def flags(self) -> list[dict[str, Any]]:
        """Current flags with their evidence (decayed flags are dropped)."""
        now = self._clock()
        with self._lock:
            out = []
            states = [*self._identities.values(), *self._addresses.values()]
            if self._store is not None:  # every worker's consumers
                states = []
                for c in self._store.consumers():
                    blob = self._store.load(c)
                    if blob is not None:
                        states.append(load_state(blob, self._new(), Flag))
            for s in states:
                if s.flag is not None and now - s.flag.last_seen <= self.policy.flag_ttl_s:
                    out.append({**s.flag.to_dict(), "rows": s.rows, "bits_released": round(s.bits, 1)})
            return out

    def queries(self, consumer: str) -> np.ndarray:
        """The consumer's recorded distinct queries whose answers carried its watermark (the probes for
        :meth:`ConsumerWatermark.attribute`); held in memory, newest ``keep_queries``."""
        with self._lock:
            s = self._table(consumer).get(consumer)
            rows = list(s.kept) if s is not None else []
        return np.stack(rows) if rows else np.zeros((0, self.n_features), np.float32)

    def evidence(self, reference: Callable[[np.ndarray], Any], *, min_rows: int = 30) -> Any:
        """Every identity's recorded queries and ``reference`` (the clean model) on them, MAC'd
        (:class:`bastion.watermark.api.ConsumerEvidence`) for ``bastion watermark verify --consumers``."""
        if self.watermark is None:
            raise InvalidInput("the theft defence has no consumer watermark")
        probes = {}
        for consumer in self.consumers():
            x = self.queries(consumer)
            if len(x) >= min_rows and not consumer.startswith("addr:"):
                probes[consumer] = (x, np.asarray(reference(x), dtype=np.float32))
        return self.watermark.evidence(probes)

    def label_evidence(self) -> Any:
        """Every identity's label marks and control rows, MAC'd (a ``LabelEvidence``): the proof
        against a copy trained on the argmax labels alone."""
        if self.labels is None:
            raise InvalidInput("the theft defence has no label marks")
        return self.labels.evidence([c for c in self.labels.consumers() if not c.startswith("addr:")])

    def consumers(self) -> list[str]:
        """Every consumer id seen (the candidates for watermark attribution)."""
        with self._lock:
            return [*self._identities, *self._addresses]

    def reset(self, consumer: str) -> dict[str, Any] | None:
        """An admin's reset of ``consumer`` (an identity, or ``addr:<ip>``): its flag and the suspicion
        behind it (its detection windows, recent distinct rows, re-send digests and PRADA/coverage state) are
        cleared, in the shared store too, so a falsely flagged customer is judged afresh from its next rows.
        The evidence stays: its recorded watermark probes, its label marks and controls, and its row counts
        and daily budget (a reset hands out no new budget). Returns the flag it had (``Flag.to_dict``), or
        None."""
        with self._lock, self._shared([consumer]):
            table = self._table(consumer)
            known = consumer in table or (self._store is not None and self._store.load(consumer) is not None)
            previous = None
            if known:
                old = self._state(consumer)
                previous = None if old.flag is None else old.flag.to_dict()
                fresh = self._new()
                for name in _Consumer.__slots__:  # all but the suspicion (a new field is kept by default)
                    if name not in _SUSPICION:
                        setattr(fresh, name, getattr(old, name))
                table[consumer] = fresh
                self._save([consumer], [fresh])
        self.monitor.reset(consumer)
        return previous

"""``bastion respond --watch``: collect, hunt and act every ``interval`` seconds until stopped.

Each tick reads new audit-log entries into the event store (:func:`bastion.events.collect_audit`), hunts the
last ``lookback_s`` seconds of events with the rules and hands the findings to the :class:`Responder`, which
acts once per finding key (the keys handled are kept in the signed response state, so a restart does not act
twice). Each finding's evidence is checked against the signed audit log before acting
(``respond(events=store)``).

The anomaly score (:func:`bastion.hunt.anomaly.score_windows`: an Isolation Forest over per-identity/client
hours, fitted on the week before and refitted at most once an hour) runs on its own schedule, every
``anomaly_every_s`` (default 60 s) when new entries arrived, in a background thread, so a refit never delays a
rule finding's action: the rules are hunted and acted on every tick as before, and the anomaly findings of
the last finished pass are handed to the same :meth:`Responder.respond` on the next tick, through the same
evidence check. The default playbook, and any playbook rule that names no mode, only *proposes* an action for
an anomaly (approval, a pending proposal under ``--watch``; see :meth:`Responder.plan`); a playbook rule with
``mode = "auto"`` acts on it.

A tick that fails for any reason is logged (and reported in its :class:`Tick`) and the next tick tries again
in full: the service does not stop. When the audit log does not verify the responder acts on nothing and
consumes nothing (:meth:`Responder.respond` raises), so every tick reports the error until it is repaired.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bastion.events.collect import collect_audit
from bastion.events.store import EventStore
from bastion.hunt import CompiledRule, Finding, hunt, load_rules, verifier_for
from bastion.respond.responder import ActionResult, Responder

logger = logging.getLogger(__name__)
ANOMALY_EVERY_S = 60.0


@dataclass(frozen=True)
class Tick:
    """One pass: audit entries read, findings (count and the findings), actions, and when the hunt ended.

    ``anomalies``: the anomaly findings handed to the responder this tick (from the last finished anomaly
    pass; also in ``found``), and ``anomaly_at`` when that pass scored (0: none this tick)."""

    entries: int
    findings: int
    results: tuple[ActionResult, ...]
    elapsed_s: float
    found: tuple[Finding, ...] = ()
    hunted_at: float = 0.0
    error: str = ""  # why the tick failed (e.g. the audit log does not verify); retried every tick
    anomalies: tuple[Finding, ...] = ()
    anomaly_at: float = 0.0


class _AnomalyPass:
    """The anomaly score on a schedule, in one background thread: at most one pass at a time, started when
    ``every_s`` has passed since the last start and entries arrived since (or the last pass failed)."""

    def __init__(self, store: EventStore, *, every_s: float, lookback_s: float, seed: int) -> None:
        self._store = store
        self._every_s = every_s
        self._lookback_s = lookback_s
        self._seed = seed
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-anomaly")
        self._future: Future[tuple[list[Finding], float]] | None = None
        self._started = float("-inf")
        self._stale = True  # entries arrived since the last pass started (or none ran yet)

    def _score(self, at: float) -> tuple[list[Finding], float]:
        from bastion.hunt.anomaly import HISTORY_S, score_windows

        found = score_windows(self._store, since=at - self._lookback_s, seed=self._seed, history_s=HISTORY_S)
        return found, at

    def poll(self, *, entries: int, now: float) -> tuple[list[Finding], float] | None:
        """The findings of a pass that finished since the last poll (None: none); starts the next when due."""
        self._stale = self._stale or entries > 0
        done = None
        if self._future is not None and self._future.done():
            future, self._future = self._future, None
            try:
                done = future.result()
            except Exception as exc:  # a failed pass is retried at the next schedule
                self._stale = True
                logger.error("respond --watch: anomaly pass failed (%s: %s)", type(exc).__name__, exc)
        mono = time.monotonic()
        if self._future is None and self._stale and mono - self._started >= self._every_s:
            self._started, self._stale = mono, False
            self._future = self._pool.submit(self._score, now)
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def watch(
    *,
    responder: Responder,
    store: EventStore,
    rules: list[CompiledRule] | None = None,
    interval_s: float = 1.0,
    lookback_s: float = 3600.0,
    anomaly: bool = True,
    anomaly_every_s: float = ANOMALY_EVERY_S,
    seed: int = 0,
    stop: threading.Event | None = None,
    on_tick: Callable[[Tick], None] | None = None,
    max_ticks: int | None = None,
    now: Callable[[], float] = time.time,
) -> int:
    """Run until ``stop`` is set (or ``max_ticks``); returns the number of actions taken.

    ``anomaly``: also run the anomaly score, every ``anomaly_every_s`` in the background (see the module
    docstring); its findings are acted on (or proposed) on the tick after their pass finishes."""
    compiled = rules if rules is not None else load_rules()
    stop = stop or threading.Event()
    scorer = (
        _AnomalyPass(store, every_s=anomaly_every_s, lookback_s=lookback_s, seed=seed) if anomaly else None
    )
    pending_anomalies: list[Finding] = []  # a finished pass's findings not yet handed over (a failed tick)
    taken = ticks = 0
    error = ""
    vault: Any = responder.vault
    try:
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            started = time.perf_counter()
            results: tuple[ActionResult, ...] = ()
            found: tuple[Finding, ...] = ()
            anomalies: tuple[Finding, ...] = ()
            hunted_at = anomaly_at = 0.0
            entries = 0
            failed, error = bool(error), ""
            try:
                entries = collect_audit(vault, store)
                if entries or ticks == 0 or failed:  # a failed tick is retried in full until it succeeds
                    report = hunt(
                        store=store,
                        since=now() - lookback_s,
                        rules=compiled,
                        anomaly=False,  # on its own schedule, below
                        verify=verifier_for(vault, store),
                    )
                    found, hunted_at = report.findings, now()
                    results = tuple(responder.respond(report.findings, events=store))
                if scorer is not None:
                    done = scorer.poll(entries=entries, now=now())
                    if done is not None:
                        pending_anomalies, anomaly_at = done
                    if pending_anomalies:
                        anomalies = tuple(pending_anomalies)
                        found, hunted_at = (*found, *anomalies), hunted_at or now()
                        results = (*results, *responder.respond(anomalies, events=store))
                    pending_anomalies = []
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.error("respond --watch: tick failed (%s); retrying", error)
            taken += sum(1 for r in results if r.status == "done")
            ticks += 1
            if on_tick is not None:
                on_tick(
                    Tick(
                        entries,
                        len(found),
                        results,
                        time.perf_counter() - started,
                        found,
                        hunted_at,
                        error,
                        anomalies,
                        anomaly_at,
                    )
                )
            stop.wait(max(0.0, interval_s - (time.perf_counter() - started)))
    finally:
        if scorer is not None:
            scorer.close()
    return taken


__all__ = ["ANOMALY_EVERY_S", "Tick", "watch"]

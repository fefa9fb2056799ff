"""``bastion respond --watch``: collect, hunt and act every ``interval`` seconds until stopped.

Each tick reads new audit-log entries into the event store (:func:`bastion.events.collect_audit`), hunts the
last ``lookback_s`` seconds of events and hands the findings to the :class:`Responder`, which acts once per
finding key (the keys handled are kept in the signed response state, so a restart does not act twice).
Each finding's evidence is checked against the signed audit log before acting (``respond(events=store)``).
A tick that fails for any reason is logged (and reported in its :class:`Tick`) and the next tick tries again
in full: the service does not stop. When the audit log does not verify the responder acts on nothing and
consumes nothing (:meth:`Responder.respond` raises), so every tick reports the error until it is repaired.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.events.collect import collect_audit
from bastion.events.store import EventStore
from bastion.hunt import CompiledRule, Finding, hunt, load_rules, verifier_for
from bastion.respond.responder import ActionResult, Responder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tick:
    """One pass: audit entries read, findings (count and the findings), actions, and when the hunt ended."""

    entries: int
    findings: int
    results: tuple[ActionResult, ...]
    elapsed_s: float
    found: tuple[Finding, ...] = ()
    hunted_at: float = 0.0
    error: str = ""  # why the tick failed (e.g. the audit log does not verify); retried every tick


def watch(
    *,
    responder: Responder,
    store: EventStore,
    rules: list[CompiledRule] | None = None,
    interval_s: float = 1.0,
    lookback_s: float = 3600.0,
    anomaly: bool = False,
    stop: threading.Event | None = None,
    on_tick: Callable[[Tick], None] | None = None,
    max_ticks: int | None = None,
    now: Callable[[], float] = time.time,
) -> int:
    """Run until ``stop`` is set (or ``max_ticks``); returns the number of actions taken."""
    compiled = rules if rules is not None else load_rules()
    stop = stop or threading.Event()
    taken = ticks = 0
    error = ""
    vault: Any = responder.vault
    while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
        started = time.perf_counter()
        results: tuple[ActionResult, ...] = ()
        found: tuple[Finding, ...] = ()
        hunted_at = 0.0
        entries = 0
        failed, error = bool(error), ""
        try:
            entries = collect_audit(vault, store)
            if entries or ticks == 0 or failed:  # a failed tick is retried in full until it succeeds
                report = hunt(
                    store=store,
                    since=now() - lookback_s,
                    rules=compiled,
                    anomaly=anomaly,
                    verify=verifier_for(vault, store),
                )
                found, hunted_at = report.findings, now()
                results = tuple(responder.respond(report.findings, events=store))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.error("respond --watch: tick failed (%s); retrying", error)
        taken += sum(1 for r in results if r.status == "done")
        ticks += 1
        if on_tick is not None:
            on_tick(
                Tick(entries, len(found), results, time.perf_counter() - started, found, hunted_at, error)
            )
        stop.wait(max(0.0, interval_s - (time.perf_counter() - started)))
    return taken


__all__ = ["Tick", "watch"]

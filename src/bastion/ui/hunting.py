"""The hunting page: findings of :func:`bastion.hunt.hunt` over the event store, the responder's actions from
the audit log and the gateway-side response state (signature checked).

Read-only: the page hunts over the events already collected (by ``bastion respond --watch`` or
``bastion events``) and never acts. A hunt is cached per store size, so reloading the page does not re-run it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bastion.errors import BastionError

_lock = threading.Lock()
_cache: dict[str, tuple[int, Any]] = {}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _report(home: Path) -> tuple[Any, int, float | None]:
    from bastion.events import EventStore, default_events_url
    from bastion.hunt import hunt

    url = default_events_url(home)
    with EventStore(url) as store:
        size = store.max_id()
        with _lock:
            cached = _cache.get(url)
        if cached is not None and cached[0] == size:
            report = cached[1]
        else:
            report = hunt(store=store)
            with _lock:
                _cache[url] = (size, report)
        newest = store.events(after_id=max(0, size - 1), limit=1)
    return report, report.events, (newest[0].time if newest else None)


def _finding(f: Any) -> dict[str, Any]:
    subject = " / ".join(x for x in (f.identity, f.client, f.model) if x and x != "-") or "-"
    why = f"{f.count} event(s)"
    if f.score is not None:
        why += f", score {f.score:.3g}"
    if f.features:
        why += "; " + ", ".join(f"{name} = {value:.3g} (z {z:.1f})" for name, value, z in f.features[:3])
    techniques = ", ".join(
        f"{t} {n}".strip()
        for t, n in zip(f.techniques, f.technique_names or ("",) * len(f.techniques), strict=False)
    )
    return {
        "rule": f.rule_id,
        "title": f.title,
        "techniques": techniques or "-",
        "severity": f.severity,
        "subject": subject,
        "first": _iso(f.first_seen),
        "last": _iso(f.last_seen),
        "why": why,
    }


def _actions(vault: Any) -> list[dict[str, Any]]:
    from bastion.ui.data import recent_entries

    out = []
    for e in reversed(recent_entries(vault)):
        if e.action.startswith("respond:"):
            d = e.details or {}
            out.append(
                {
                    "index": e.index,
                    "timestamp": e.timestamp,
                    "action": e.action.removeprefix("respond:"),
                    "target": e.target,
                    "outcome": e.outcome,
                    "finding": f"{d.get('rule_id', '-')} ({d.get('mode', '-')}) {d.get('detail', '')}",
                }
            )
    return out


def _state(vault: Any) -> dict[str, Any]:
    from bastion.respond import load_verified, state_path

    try:
        state = load_verified(state_path(vault.settings.home), vault.signer)
    except BastionError as exc:
        return {"ok": False, "message": str(exc), "sections": {}, "guard_mode": None}
    sections = {
        "blocked clients": sorted(state.blocked_clients),
        "throttled clients": sorted(state.throttled_clients),
        "blocked identities": sorted(state.blocked_identities),
        "quarantined models": sorted(state.quarantined_models),
    }
    return {"ok": True, "message": "", "sections": sections, "guard_mode": state.guard_mode}


def hunt_context(vault: Any) -> Mapping[str, Any]:
    """What the hunting page shows (the session vault must hold ``log:read``)."""
    vault.log_head()  # the permission check (log:read) for reading what the log's events say
    try:
        report, events, newest = _report(vault.settings.home)
        findings = [_finding(f) for f in report.findings]
        error = None
    except BastionError as exc:
        findings, events, newest, error = [], 0, None, str(exc)
    return {
        "available": True,
        "findings": findings,
        "events": events,
        "newest": _iso(newest) if newest else None,
        "hunt_error": error,
        "actions": _actions(vault),
        "state": _state(vault),
    }


__all__ = ["hunt_context"]

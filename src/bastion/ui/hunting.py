"""The hunting page: findings of :func:`bastion.hunt.hunt` over the event store, the responder's actions from
the audit log and the gateway-side response state (signature checked).

Read-only: the page hunts over the events already collected (by ``bastion respond --watch`` or
``bastion events``) and never acts. A hunt is cached per store size, audit-log head and the event database's
file stamps (an in-place UPDATE of a row changes them), so reloading the page does not re-run it. The response
state is read as the gateway reads it (:func:`~bastion.store.response_state.load_current` against the
verified log record): a rolled-back or deleted state file shows as refused, not as valid.

Findings go through the responder's evidence check (:class:`~bastion.events.verify.EvidenceVerifier`, issue
17 attack17c F9): one whose events do not re-derive from the signed audit log (rows an insider wrote into
``events.db``, or a log that does not verify) is not listed with the findings but apart, as refused with
the reason, so the page never shows a forged finding as a real one (and shows that the store was edited).
The baseline lowering gets the same check, as in ``bastion hunt``.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bastion.errors import BastionError

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[Any, ...], Any]] = {}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _stamps(url: str) -> tuple[Any, ...]:
    """(inode, size, mtime) of a SQLite event store's files (and its WAL): any write changes one."""
    if not url.startswith("sqlite:///"):
        return ()
    out: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(url.removeprefix("sqlite:///") + suffix)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _report(
    home: Path, head: Any = None, log: Any = None
) -> tuple[Any, int, float | None, Mapping[str, str]]:
    """(the hunt report, events in the store, newest event's time, finding key -> why its evidence is
    refused); ``log``: the vault whose signed audit log the evidence is checked against (None: no check)."""
    from bastion.events import EventStore, default_events_url
    from bastion.events.verify import EvidenceVerifier
    from bastion.hunt import hunt

    url = default_events_url(home)
    with EventStore(url) as store:
        size = store.max_id()
        version = (
            size,
            getattr(head, "size", None),
            getattr(head, "root_hash", None),
            log is None,
            *_stamps(url),
        )
        with _lock:
            cached = _cache.get(url)
        if cached is not None and cached[0] == version:
            report, refused = cached[1]
        else:
            refused = {}
            if log is None:
                report = hunt(store=store)
            else:
                checker = EvidenceVerifier(log=log, store=store)
                report = hunt(store=store, verify=lambda ids: checker.check(ids) is None)
                for f in report.findings:
                    why = checker.check(f.event_ids, identity=f.identity, client=f.client, model=f.model)
                    if why is not None:
                        refused[f.key] = why
            with _lock:
                _cache[url] = (version, (report, refused))
        newest = store.events(after_id=max(0, size - 1), limit=1)
    return report, report.events, (newest[0].time if newest else None), refused


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
    from bastion.errors import IntegrityError
    from bastion.respond import state_path
    from bastion.store.response_state import LoggedState, load_current

    try:
        engine = getattr(vault, "engine", None)
        if engine is None:
            raise IntegrityError("response state: no audit log to check it against")
        logged = LoggedState(engine).latest_verified(vault.signer)
        state = load_current(state_path(vault.settings.home), vault.signer, logged)
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
    head = vault.log_head()  # the permission check (log:read) for reading what the log's events say
    refused: list[dict[str, Any]] = []
    try:
        report, events, newest, why = _report(vault.settings.home, head, vault)
        findings = [_finding(f) for f in report.findings if f.key not in why]
        refused = [{**_finding(f), "refused": why[f.key]} for f in report.findings if f.key in why]
        error = None
    except BastionError as exc:
        findings, events, newest, error = [], 0, None, str(exc)
    return {
        "available": True,
        "findings": findings,
        "refused": refused,
        "events": events,
        "newest": _iso(newest) if newest else None,
        "hunt_error": error,
        "actions": _actions(vault),
        "state": _state(vault),
    }


__all__ = ["hunt_context"]

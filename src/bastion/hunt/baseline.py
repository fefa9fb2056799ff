"""Per-identity baselines for the rules that have a known benign twin.

Some behaviour is an attack for one identity and routine for another: a pull at 03:00 is a stolen token for
a person who works 09:00-17:00 and the nightly evaluation job for a batch identity; key-ring operations
followed by pulls are key misuse for a fresh credential and maintenance for the admin who rotates the keys
every week. A fixed rule cannot tell them apart; the identity's own history can. Both checks read the event
store's hourly rollup (one row per identity, client, hour, kind and outcome), so they cost a few queries.

* :func:`offhours_pulls` — *pull outside this identity's usual hours* (rule id ``…0501``, severity low): a
  pull in an hour of day, ±1 h, in which the identity was never active during the ``HISTORY_DAYS`` before.
  No finding without history: the identity must have been active on at least ``MIN_HISTORY_DAYS`` distinct
  earlier days (a new identity, or bastion's first day, has no usual hours to be outside of).
* :func:`apply_history` — the correlation rules ``…0402`` (bulk pull) and ``…0703`` (key operation followed
  by pulls) are lowered to severity ``low`` when the identity did the same before, at least ``TWIN_GAP_S``
  earlier: a ``keys:*`` operation (it is a key operator), or as many distinct models in one hour (it is a
  batch puller). The default playbook acts automatically on these rules only at severity high, and asks for
  approval below (:mod:`bastion.respond`): a known operator's night of maintenance is shown, not acted on.

The attacker who knows this can only hide behind an identity that already has the history (a stolen admin
token used like the admin uses it); that finding still appears, at low severity, for a person to approve.
The history is read from the event store, which a home writer can edit: with ``verify`` (the CLI and
``respond --watch`` pass one that re-derives events from the signed audit log,
:class:`bastion.events.verify.EvidenceVerifier`) a finding is lowered only when the events of that history
are backed by the log, so forged rollup or event rows cannot lower a real attack to an approval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import sqlalchemy as sa

from bastion.events.store import WINDOW_S, EventStore, rollup_table, window_models_table
from bastion.hunt.report import Finding

OFFHOURS_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000501"
BULK_PULL_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000402"
KEY_THEN_PULL_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000703"
BULK_PULL_MODELS = 5  # the bulk-pull rule's threshold (rules/bulk-pull.yml)
HISTORY_DAYS = 28
MIN_HISTORY_DAYS = 5
TWIN_GAP_S = 12 * 3600.0
_DAY = 86_400


def _hour(w: int) -> int:
    return (w * WINDOW_S % _DAY) // WINDOW_S


def _near(hour: int, usual: set[int]) -> bool:
    return any(min(abs(hour - u), 24 - abs(hour - u)) <= 1 for u in usual)


def offhours_pulls(store: EventStore, *, since: float | None) -> list[Finding]:
    """One finding per identity and day with pulls outside the hours that identity is usually active."""
    from bastion.governance.threat import atlas_techniques

    pulls_q = sa.select(rollup_table.c.identity, rollup_table.c.w).where(
        rollup_table.c.kind == "pull", rollup_table.c.outcome == "ok", rollup_table.c.identity != "-"
    )
    if since is not None:
        pulls_q = pulls_q.where(rollup_table.c.w >= int(since // WINDOW_S))
    with store.engine.connect() as conn:
        pull_windows = sorted({(str(i), int(w)) for i, w in conn.execute(pulls_q)})
    if not pull_windows:
        return []
    identities = sorted({i for i, _ in pull_windows})
    lo = min(w for _, w in pull_windows) - HISTORY_DAYS * 24
    active: dict[str, list[int]] = defaultdict(list)
    hist_q = (
        sa.select(rollup_table.c.identity, rollup_table.c.w)
        .where(rollup_table.c.identity.in_(identities), rollup_table.c.w >= lo)
        .where(rollup_table.c.kind != "response")
        .group_by(rollup_table.c.identity, rollup_table.c.w)
    )
    with store.engine.connect() as conn:
        for identity, w in conn.execute(hist_q):
            active[str(identity)].append(int(w))
    flagged: dict[tuple[str, int], list[int]] = defaultdict(list)
    for identity, w in pull_windows:
        day_start = w - (w * WINDOW_S % _DAY) // WINDOW_S
        history = [v for v in active[identity] if day_start - HISTORY_DAYS * 24 <= v < day_start]
        if len({v * WINDOW_S // _DAY for v in history}) < MIN_HISTORY_DAYS:
            continue  # no usual hours yet: no finding
        if not _near(_hour(w), {_hour(v) for v in history}):
            flagged[(identity, day_start)].append(w)
    names = dict(atlas_techniques())
    findings = []
    for (identity, _day), windows in sorted(flagged.items()):
        ws = sorted(windows)
        rows = store.query(
            f"SELECT id, ts, model FROM {store.table} WHERE kind = 'pull' AND outcome = 'ok' "  # noqa: S608 - table name is ours; values are bound
            "AND identity = :i AND ts >= :lo AND ts < :hi ORDER BY ts, id LIMIT 200",
            {"i": identity, "lo": ws[0] * WINDOW_S, "hi": (ws[-1] + 1) * WINDOW_S},
        )
        hits = [r for r in rows if int(float(r.ts) // WINDOW_S) in set(ws)]
        if not hits:
            continue
        first, last = float(hits[0].ts), float(hits[-1].ts)
        models = {str(r.model) for r in hits} - {"-"}
        findings.append(
            Finding(
                rule_id=OFFHOURS_RULE,
                title="Pull outside this identity's usual hours",
                techniques=("AML.T0035",),
                technique_names=(names.get("AML.T0035", ""),),
                severity="low",
                identity=identity,
                client="-",
                model=models.pop() if len(models) == 1 else "-",
                first_seen=first,
                last_seen=last,
                event_ids=tuple(int(r.id) for r in hits),
                count=len(hits),
                key=f"{OFFHOURS_RULE}|identity={identity}|t={int(first)}",
            )
        )
    return findings


Verify = Callable[[Sequence[int]], bool]


def _key_operator(store: EventStore, identity: str, before: float, verify: Verify | None) -> bool:
    rows = store.query(
        f"SELECT id FROM {store.table} WHERE kind = 'key-op' AND outcome = 'ok' AND action LIKE 'keys:%' "  # noqa: S608 - table name is ours; values are bound
        "AND identity = :i AND ts >= :lo AND ts < :hi ORDER BY ts DESC LIMIT 20",
        {"i": identity, "lo": before - HISTORY_DAYS * _DAY, "hi": before},
    )
    return any(verify is None or verify([int(r.id)]) for r in rows)


def _bulk_puller(store: EventStore, identity: str, before: float, verify: Verify | None) -> bool:
    m = window_models_table
    hi = int(before // WINDOW_S)
    q = (
        sa.select(m.c.w)
        .where(m.c.identity == identity, m.c.w < hi, m.c.w >= hi - HISTORY_DAYS * 24)
        .group_by(m.c.w)
        .having(sa.func.count(sa.distinct(m.c.model)) >= BULK_PULL_MODELS)
        .order_by(m.c.w.desc())
        .limit(5)
    )
    with store.engine.connect() as conn:
        windows = [int(w) for (w,) in conn.execute(q)]
    for w in windows:
        if verify is None:
            return True
        rows = store.query(
            f"SELECT id, model FROM {store.table} WHERE kind = 'pull' AND identity = :i "  # noqa: S608 - table name is ours; values are bound
            "AND ts >= :lo AND ts < :hi ORDER BY ts, id LIMIT 200",
            {"i": identity, "lo": w * WINDOW_S, "hi": (w + 1) * WINDOW_S},
        )
        if len({str(r.model) for r in rows} - {"-"}) >= BULK_PULL_MODELS and verify(
            [int(r.id) for r in rows]
        ):
            return True
    return False


def apply_history(
    findings: Iterable[Finding], store: EventStore, *, verify: Verify | None = None
) -> list[Finding]:
    """Lower the twin rules' findings to ``low`` for an identity that did the same before (see module);
    ``verify(event_ids)`` must accept the events of that history when given."""
    out = []
    for f in findings:
        before = f.first_seen - TWIN_GAP_S
        if f.rule_id == KEY_THEN_PULL_RULE and _key_operator(store, f.identity, before, verify):
            f = replace(f, severity="low", title=f.title + " - a known key operator")
        elif f.rule_id == BULK_PULL_RULE and _bulk_puller(store, f.identity, before, verify):
            f = replace(f, severity="low", title=f.title + " - as this identity did before")
        out.append(f)
    return out


__all__ = ["HISTORY_DAYS", "MIN_HISTORY_DAYS", "apply_history", "offhours_pulls"]

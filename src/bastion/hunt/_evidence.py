"""The evidence behind a cumulative finding (:mod:`bastion.hunt.cumulative`): the findings' common shape
(:class:`FindingMaker`), the event store's rows and rollup counts, the events of an episode with the rows a
finding names (re-derived from the event rows, since the rollup is an unauthenticated index), and the home's
own events counted before remote gateways' records."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import sqlalchemy as sa

from bastion.events.collect import REMOTE_SOURCE
from bastion.events.store import WINDOW_S, EventStore, rollup_table
from bastion.hunt._episodes import (
    LOCAL_ONLY,
    MAX_COUNT_IDS,
    MAX_EVENT_IDS,
    TECHNIQUES,
    UNVERIFIABLE,
    Episode,
    rolling,
    uncovered,
)
from bastion.hunt.report import Finding
from bastion.hunt.sigma import entry_evidence


class FindingMaker:
    """Builds a cumulative finding: techniques by rule, first and last seen, the named rows, its key."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def __call__(
        self,
        rule: str,
        title: str,
        *,
        identity: str,
        client: str,
        rows: list[tuple[int, float, str]],
        count: int,
        limit: int = MAX_EVENT_IDS,
        key_t: float | None = None,
        suffix: str = "",
    ) -> Finding:
        techniques = TECHNIQUES[rule]
        models = {m for _, _, m in rows} - {"-"}
        first = rows[0][1]
        scope = f"identity={identity}" if identity != "-" else f"client={client}"
        return Finding(
            rule_id=rule,
            title=title,
            techniques=techniques,
            technique_names=tuple(self.names.get(t, "") for t in techniques),
            severity="high",
            identity=identity,
            client=client,
            model=models.pop() if len(models) == 1 else "-",
            first_seen=first,
            last_seen=rows[-1][1],
            event_ids=tuple(i for i, _, _ in rows[:limit]),
            count=count,
            key=f"{rule}|{scope}|sum={title.split(':', 1)[0]}|t={int(first if key_t is None else key_t)}"
            + suffix,
        )


def event_rows(
    store: EventStore, where: str, params: dict[str, object]
) -> list[tuple[int, float, str, str, str, str]]:
    rows = store.query(
        f"SELECT id, ts, identity, client, model, source FROM {store.table} WHERE {where} ORDER BY ts, id",  # noqa: S608 - ours; bound
        params,
    )
    return [
        (int(r.id), float(r.ts), str(r.identity), str(r.client), str(r.model), str(r.source)) for r in rows
    ]


@dataclass(frozen=True)
class Evidence:
    rows: list[tuple[int, float, str]]  # what the finding names, by time
    total: int  # SUM(count) of the episode's events
    named: int  # SUM(count) of the named rows


def window_events(
    store: EventStore, where: str, params: dict[str, object], lo_w: int, hi_w: int, threshold: int
) -> Evidence:
    """The events behind a rollup finding (the windows ``lo_w``..``hi_w`` of the episode): their summed
    count, and the rows with the largest counts (those a verified finding names); when those do not reach
    ``threshold`` (the count is spread over more rows), one row per audit entry instead, the named count then
    being the matching events of those entries (:func:`bastion.hunt.sigma.entry_evidence`)."""
    span = {**params, "lo": float(lo_w * WINDOW_S), "hi": float((hi_w + 1) * WINDOW_S)}
    cond = f"{where} AND ts >= :lo AND ts < :hi"
    total = store.query(f"SELECT COALESCE(SUM(count), 0) AS n FROM {store.table} WHERE {cond}", span)  # noqa: S608 - ours; bound
    rows = store.query(
        f"SELECT id, ts, model, count FROM {store.table} WHERE {cond} "  # noqa: S608 - ours; bound
        f"ORDER BY count DESC, id LIMIT {MAX_COUNT_IDS}",
        span,
    )
    picked = sorted((int(r.id), float(r.ts), str(r.model), int(r.count)) for r in rows)
    if sum(n for *_, n in picked) < threshold and len(picked) >= MAX_COUNT_IDS:
        entries, in_entries = entry_evidence(store, cond, span)
        if in_entries > sum(n for *_, n in picked):
            picked = sorted((int(r.id), float(r.ts), str(r.model), int(r.count)) for r in entries)
    picked.sort(key=lambda r: r[1])
    return Evidence(
        rows=[(i, t, m) for i, t, m, _ in picked],
        total=int(total[0].n) if total else 0,
        named=sum(n for *_, n in picked),
    )


def verified(finding: Finding, evidence: Evidence, threshold: int) -> Finding:
    """``finding`` as it stands on its named events: at severity low when they alone do not reach
    ``threshold``."""
    if evidence.named >= threshold:
        return finding
    return replace(finding, severity="low", title=finding.title + UNVERIFIABLE)


def rollup_counts(store: EventStore, kind: str, since: float | None) -> list[tuple[str, str, int, int]]:
    r = rollup_table
    q = sa.select(r.c.identity, r.c.client, r.c.w, r.c.n).where(r.c.kind == kind)
    if since is not None:
        q = q.where(r.c.w >= int(since // WINDOW_S))
    with store.engine.connect() as conn:
        return [(str(i), str(c), int(w), int(n)) for i, c, w, n in conn.execute(q)]


def episode_clients(
    store: EventStore, where: str, params: dict[str, object], lo_w: int, hi_w: int
) -> set[str]:
    """The clients of the events ``where`` admits in the windows ``lo_w``..``hi_w`` (the finding's own
    events: home ones for a home finding, not the rollup's, which mixes in remote gateways' records)."""
    span = {**params, "lo": float(lo_w * WINDOW_S), "hi": float((hi_w + 1) * WINDOW_S)}
    rows = store.query(
        f"SELECT DISTINCT client FROM {store.table} WHERE {where} AND ts >= :lo AND ts < :hi",  # noqa: S608 - ours; bound
        span,
    )
    return {str(r.client) for r in rows}


def has_remote(store: EventStore, since_sql: str, base: dict[str, object]) -> bool:
    """Whether remote gateways' records lie in the hunt's range (an index lookup)."""
    return bool(
        store.query(
            f"SELECT 1 FROM {store.table} WHERE source = '{REMOTE_SOURCE}'{since_sql} LIMIT 1",  # noqa: S608 - constants; bound
            base,
        )
    )


def home_windows(store: EventStore, where: str, params: dict[str, object]) -> dict[int, int]:
    """Hourly counts of the home's own events ``where`` admits (the rollup has no source column)."""
    windows: dict[int, int] = defaultdict(int)
    for r in store.query(f"SELECT ts, count FROM {store.table} WHERE {where}{LOCAL_ONLY}", params):  # noqa: S608 - ours; bound
        windows[int(float(r.ts) // WINDOW_S)] += int(r.count)
    return windows


def home_first(
    store: EventStore,
    where: str,
    params: dict[str, object],
    episodes: list[Episode],
    span: int,
    threshold: int,
    remote: bool,
) -> list[tuple[Episode, str, str]]:
    """The rollup's ``episodes`` as (episode, condition, key suffix), home events first (as
    :func:`bastion.hunt.sigma.run_rule`): with no remote record in range, as they are; else the episodes of
    the home's own events alone (condition restricted to them, no suffix), then each rollup episode in which
    no home episode crossed, which needs remote records to cross (all events, suffix ``|remote``: the
    responder asks for approval). A remote record never joins a home finding (issue 17 attack17e A1)."""
    if not remote or not episodes:
        return [(e, where, "") for e in episodes]
    home = rolling(home_windows(store, where, params), span, threshold)
    rest = uncovered(episodes, home, span, float)
    return [(e, where + LOCAL_ONLY, "") for e in home] + [(e, where, "|remote") for e in rest]

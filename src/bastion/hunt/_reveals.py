"""Revealed values per identity: the cumulative reveal check counts values, not calls.

The reveal-spike rule and the reveal checks of :mod:`bastion.hunt.cumulative` count reveal *calls* (one
audit entry, one event, whatever it revealed); one ``bastion data reveal --file`` re-identifies a whole file
in one call, so four whole-file reveals re-identified 24,000 values with no finding (issue 17 attack17c F8).
Each ``data:reveal`` entry says how many values it revealed (``details.count``, written by
:func:`bastion.data.service.reveal`); these checks sum it per identity over exact sliding windows of an hour
and a day (:attr:`~bastion.hunt.cumulative.Thresholds.reveal_values_per_hour`, ``…_per_day``; a day episode
already covered by an hourly one is not reported twice). A count that is not a non-negative integer counts
as one value (the call itself), fail closed. The findings carry the reveal-spike rule id, so the playbook
that acts on reveal spikes acts on them; they name every event they count (at most
:data:`~bastion.hunt.cumulative.MAX_EVENT_IDS` reveals: the count of a longer run rests on those), and the
responder's evidence check verifies each named row, details included, against the signed log, so a count
inflated in ``events.db`` is refused.

What an adaptive attacker still gets with the defaults: fewer than 1,000 values an hour and 5,000 a day per
identity (and whatever other identities' tokens he holds).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping

from bastion.events.store import EventStore
from bastion.hunt._episodes import (
    DAY,
    HOUR,
    MAX_EVENT_IDS,
    REVEAL_RULE,
    TECHNIQUES,
    UNVERIFIABLE,
    episodes,
    uncovered,
)
from bastion.hunt.cumulative import Thresholds
from bastion.hunt.report import Finding

_MAX_VALUES = 10**12  # one call's claim above this is taken as this (a sum stays a plain integer)


def _values(details: str) -> int:
    """The number of values one reveal event stands for (``details.count``), else 1."""
    try:
        count = json.loads(details).get("count")
    except (ValueError, TypeError, AttributeError):
        return 1
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return 1
    return min(count, _MAX_VALUES)


def reveal_value_findings(
    store: EventStore, *, since: float | None, limits: Thresholds, names: Mapping[str, str]
) -> Iterable[Finding]:
    """A finding per identity and episode in which its reveals revealed ``reveal_values_per_hour`` values in
    an hour or ``reveal_values_per_day`` in a day."""
    where = "kind = 'reveal' AND outcome = 'ok'" + (" AND ts >= :since" if since is not None else "")
    rows = store.query(
        f"SELECT id, ts, identity, model, details FROM {store.table} WHERE {where} ORDER BY ts, id",  # noqa: S608 - ours; bound
        {"since": since} if since is not None else {},
    )
    by_identity: dict[str, list[tuple[int, float, str, int]]] = defaultdict(list)
    for r in rows:
        if str(r.identity) not in ("-", ""):
            by_identity[str(r.identity)].append(
                (int(r.id), float(r.ts), str(r.model), _values(str(r.details)))
            )
    techniques = TECHNIQUES[REVEAL_RULE]
    for identity, events in sorted(by_identity.items()):
        points = [(t, n, "") for _, t, _, n in events]
        hourly = episodes(points, HOUR, limits.reveal_values_per_hour, distinct=False)
        daily = episodes(points, DAY, limits.reveal_values_per_day, distinct=False)
        daily = uncovered(daily, hourly, DAY, [t for _, t, _, _ in events].__getitem__)
        for (start, crossing, _peak), label, threshold, span in [
            *((h, "hour", limits.reveal_values_per_hour, HOUR) for h in hourly),
            *((d, "day", limits.reveal_values_per_day, DAY) for d in daily),
        ]:
            # the reveals that reach the threshold, then those of the same window after the crossing
            end = crossing
            while end + 1 < len(events) and events[end + 1][1] < events[crossing][1] + span:
                end += 1
            named = events[start : end + 1]
            if len(named) > MAX_EVENT_IDS:
                named = events[start : crossing + 1][-MAX_EVENT_IDS:]
            models = {m for _, _, m, _ in named} - {"-"}
            first, count = named[0][1], sum(n for *_, n in named)
            verifiable = count >= threshold  # else the run is longer than a finding names: a person judges
            yield Finding(
                rule_id=REVEAL_RULE,
                title=(
                    f"revealed values per {label}: {count:,} by one identity "
                    f"(threshold {threshold:,} values; {len(named)} reveal call(s) named)"
                    + ("" if verifiable else UNVERIFIABLE)
                ),
                techniques=techniques,
                technique_names=tuple(names.get(t, "") for t in techniques),
                severity="high" if verifiable else "low",
                identity=identity,
                client="-",
                model=models.pop() if len(models) == 1 else "-",
                first_seen=first,
                last_seen=named[-1][1],
                event_ids=tuple(i for i, _, _, _ in named),
                count=count,
                key=f"{REVEAL_RULE}|identity={identity}|sum=revealed values per {label}|t={int(first)}",
            )


__all__ = ["reveal_value_findings"]

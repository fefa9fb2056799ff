"""A seeded attack campaign mixed into generated benign activity, to measure hunting (found, false alarms).

:func:`benign_week` generates a week of ordinary work: applications calling the gateway around the clock with
a diurnal rate (the odd expired-token failure and rate-limit hit), people pulling the few models they work on
during working hours on weekdays, pushes and promotions, a weekly key rotation by an admin, occasional data
reveals and guard blocks. :func:`campaign` adds four attacks at seeded times:

* ``extraction`` — a client querying the model at machine rate (ATLAS AML.T0024.002);
* ``token-spray`` — one address trying many tokens (AML.T0012);
* ``insider-bulk-pull`` — a person pulling many models they never use (AML.T0035);
* ``key-misuse`` — a stolen admin credential used at night: key-ring operations, then pulls (AML.T0012).

Each :class:`Attack` names its actor and time span, so :func:`score` tells found attacks from false findings.
Uses ``random.Random(seed)`` (simulation, not security).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bastion.events.schema import Event
from bastion.hunt.report import Finding

DAY = 86_400.0
# Monday 2026-11-30 00:00 UTC
WEEK_START = 1_795_996_800.0


@dataclass(frozen=True)
class Attack:
    name: str
    identity: str
    client: str
    start: float
    end: float


@dataclass(frozen=True)
class Score:
    found: tuple[str, ...]
    missed: tuple[str, ...]
    false_findings: int
    benign_events: int

    @property
    def false_per_10k(self) -> float:
        return 10_000.0 * self.false_findings / max(1, self.benign_events)


def _diurnal(hour: float) -> float:
    return 0.35 + (0.65 if 8 <= hour % 24 < 19 else 0.0)


def benign_week(
    *,
    seed: int = 0,
    apps: int = 20,
    people: int = 8,
    rate: float = 60.0,
    days: int = 7,
    start: float = WEEK_START,
) -> list[Event]:
    """Benign events: ``apps`` gateway clients at about ``rate`` requests/hour each (diurnal), ``people``."""
    rng = random.Random(seed)
    out: list[Event] = []
    models = [f"model-{i}" for i in range(12)]
    for a in range(apps):
        ident, client, model = f"app-{a}", f"10.1.0.{a + 1}", models[a % len(models)]
        for h in range(days * 24):
            base = start + h * 3600.0
            n = int(rng.gauss(rate * _diurnal(h), rate * 0.1) + 0.5)
            for _ in range(max(0, n)):
                t = base + rng.random() * 3600.0
                r = rng.random()
                if r < 0.002:
                    out.append(
                        Event(
                            time=t,
                            kind="auth-failure",
                            client=client,
                            model=model,
                            action="/v2/infer",
                            outcome="denied",
                            status=401,
                            source="gateway",
                        )
                    )
                elif r < 0.004:
                    out.append(
                        Event(
                            time=t,
                            kind="rate-limit",
                            identity=ident,
                            client=client,
                            model=model,
                            outcome="denied",
                            status=429,
                            source="gateway",
                        )
                    )
                else:
                    out.append(
                        Event(
                            time=t,
                            kind="request",
                            identity=ident,
                            client=client,
                            model=model,
                            action="/v2/infer",
                            status=200,
                            source="gateway",
                        )
                    )
    for p in range(people):
        ident = f"person-{p}"
        mine = rng.sample(models, 2)
        for d in range(days):
            if (d % 7) >= 5:
                continue  # weekend
            day = start + d * DAY
            for _ in range(rng.randint(0, 4)):
                t = day + rng.uniform(8.5, 17.5) * 3600.0
                out.append(
                    Event(time=t, kind="pull", identity=ident, model=rng.choice(mine), action="registry:pull")
                )
            if rng.random() < 0.3:
                t = day + rng.uniform(9, 17) * 3600.0
                out.append(Event(time=t, kind="push", identity=ident, model=mine[0], action="registry:push"))
                out.append(
                    Event(
                        time=t + 600, kind="promote", identity=ident, model=mine[0], action="registry:promote"
                    )
                )
            if p < 2 and rng.random() < 0.5:
                t = day + rng.uniform(9, 17) * 3600.0
                out.append(
                    Event(time=t, kind="reveal", identity=ident, model="customers", action="data:reveal")
                )
            if rng.random() < 0.05:
                t = day + rng.uniform(9, 17) * 3600.0
                out.append(
                    Event(
                        time=t,
                        kind="guard-block",
                        identity=ident,
                        model=mine[0],
                        outcome="denied",
                        source="gateway",
                    )
                )
    for d in range(days):
        if d % 7 == 1:  # Tuesday 10:00: the admin rotates the prod key and lists keys
            t = start + d * DAY + 10 * 3600.0
            out.append(Event(time=t, kind="key-op", identity="admin", action="keys:rotate"))
            out.append(Event(time=t + 5, kind="key-op", identity="admin", action="keys:list"))
    out.sort(key=lambda e: e.time)
    return out


def campaign(*, seed: int = 0, start: float = WEEK_START, days: int = 7) -> tuple[list[Event], list[Attack]]:
    """The four attacks at seeded times within the week; returns (events, attacks)."""
    rng = random.Random(seed + 1)
    events: list[Event] = []
    attacks: list[Attack] = []
    models = [f"model-{i}" for i in range(12)]

    t0 = start + rng.randrange(days) * DAY + rng.uniform(0, 20) * 3600.0
    ts = [t0 + i * 0.15 for i in range(2000)]  # ~6.7 requests/s for 5 minutes
    events += [
        Event(
            time=t,
            kind="request",
            identity="app-7",
            client="203.0.113.7",
            model="model-7",
            action="/v2/infer",
            status=200,
            source="gateway",
        )
        for t in ts
    ]
    attacks.append(Attack("extraction", "app-7", "203.0.113.7", ts[0], ts[-1]))

    t0 = start + rng.randrange(days) * DAY + rng.uniform(0, 23) * 3600.0
    ts = [t0 + i * 0.6 for i in range(200)]
    events += [
        Event(
            time=t,
            kind="auth-failure",
            client="198.51.100.23",
            model="model-1",
            action="/v2/infer",
            outcome="denied",
            status=401,
            source="gateway",
        )
        for t in ts
    ]
    attacks.append(Attack("token-spray", "-", "198.51.100.23", ts[0], ts[-1]))

    t0 = start + rng.randrange(5) * DAY + rng.uniform(9, 16) * 3600.0  # a weekday, working hours
    ts = [t0 + i * 90.0 for i in range(12)]
    events += [
        Event(time=t, kind="pull", identity="person-3", model=m, action="registry:pull")
        for t, m in zip(ts, models, strict=True)
    ]
    attacks.append(Attack("insider-bulk-pull", "person-3", "-", ts[0], ts[-1]))

    t0 = start + rng.randrange(days) * DAY + rng.uniform(1, 4) * 3600.0  # at night
    events += [Event(time=t0, kind="key-op", identity="ops-bot", action="keys:list")]
    ts = [t0 + 60.0 + i * 40.0 for i in range(3)]
    events += [
        Event(time=t, kind="pull", identity="ops-bot", model=m, action="registry:pull")
        for t, m in zip(ts, models[:3], strict=True)
    ]
    attacks.append(Attack("key-misuse", "ops-bot", "-", t0, ts[-1]))
    return events, attacks


def score(findings: Iterable[Finding], attacks: Sequence[Attack], *, benign_events: int) -> Score:
    """Which attacks some finding names (same actor, overlapping time), and how many findings name none."""
    found: dict[str, float] = {}
    false = 0
    for f in findings:
        hit = [
            a
            for a in attacks
            if (f.identity == a.identity and a.identity != "-") or (f.client == a.client and a.client != "-")
            if f.last_seen >= a.start - 60 and f.first_seen <= a.end + 3600
        ]
        if not hit:
            false += 1
        for a in hit:
            found[a.name] = f.first_seen
    names = [a.name for a in attacks]
    return Score(
        found=tuple(n for n in names if n in found),
        missed=tuple(n for n in names if n not in found),
        false_findings=false,
        benign_events=benign_events,
    )


__all__ = ["WEEK_START", "Attack", "Score", "benign_week", "campaign", "score"]

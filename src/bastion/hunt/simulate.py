"""A seeded attack campaign mixed into generated benign activity, to measure hunting (found, false alarms).

:func:`benign_week` generates a week of ordinary work: applications calling the gateway around the clock with
a diurnal rate (the odd expired-token failure and rate-limit hit), people pulling the few models they work on
during working hours on weekdays, pushes and promotions, a weekly key rotation by an admin, occasional data
reveals and guard blocks. :func:`campaign` adds four attacks at seeded times:

* ``extraction`` — a client querying the model at machine rate (ATLAS AML.T0024.002);
* ``token-spray`` — one address trying many tokens (AML.T0012);
* ``insider-bulk-pull`` — a person pulling many models they never use (AML.T0035);
* ``key-misuse`` — a stolen admin credential used at night: key-ring operations, then pulls (AML.T0012).

:func:`adaptive_campaign` adds six attacks by someone who knows every short-window rule and stays under it
(found by the cumulative thresholds of :mod:`bastion.hunt.cumulative` and the rules' wider windows).

Each :class:`Attack` names its actor and time span, so :func:`score` tells found attacks from false findings.
Uses ``random.Random(seed)`` (simulation, not security).
"""

from __future__ import annotations

import ipaddress
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


def adaptive_campaign(
    *, seed: int = 0, start: float = WEEK_START, days: int = 7
) -> tuple[list[Event], list[Attack]]:
    """Six attacks by someone who knows every short-window rule and stays under it (issue 17 M3).

    Extraction at 290 requests/min from 8 addresses of a /64 for 30 min; a token spray at 18 guesses/min
    from each of 12 addresses of a /24 for an hour; a bulk pull of 12 models, one every 21 min; a key
    operation, then pulls 11 min later; 51 reveals, one every 3.5 min; 20 guard-blocked prompts over 4 models
    through the guard proxy (whose events name its upstream URL, not the model). Placed on a seeded weekday.
    """
    rng = random.Random(seed + 2)
    day = start + rng.randrange(min(days, 5)) * DAY
    events: list[Event] = []
    attacks: list[Attack] = []
    t0 = day + rng.uniform(10, 11) * 3600.0
    ts = [t0 + i * (60 / 290) for i in range(290 * 30)]
    for c in range(8):
        events += [
            Event(
                time=t,
                kind="request",
                identity="app-3",
                client=f"2001:db8:0:7::{c + 1}",
                model="model-3",
                action="/v2/infer",
                status=200,
                source="gateway",
            )
            for t in ts
        ]
    attacks.append(Attack("slow-wide-extraction", "app-3", "-", ts[0], ts[-1]))
    t0 = day + rng.uniform(13, 14) * 3600.0
    ts = [t0 + i * (60 / 18) for i in range(18 * 60)]
    for c in range(12):
        events += [
            Event(
                time=t + c,
                kind="auth-failure",
                client=f"198.51.100.{c + 1}",
                model="model-1",
                action="/v2/infer",
                outcome="denied",
                status=401,
                source="gateway",
            )
            for t in ts
        ]
    attacks.append(Attack("wide-token-spray", "-", "198.51.100.0/24", ts[0], ts[-1] + 12))
    t0 = day + 9 * 3600.0
    ts = [t0 + i * 21 * 60.0 for i in range(12)]
    events += [
        Event(time=t, kind="pull", identity="person-3", model=f"model-{i}", action="registry:pull")
        for i, t in enumerate(ts)
    ]
    attacks.append(Attack("slow-bulk-pull", "person-3", "-", ts[0], ts[-1]))
    t0 = day + 10 * 3600.0
    ts = [t0 + 660.0 + i * 40.0 for i in range(3)]
    events.append(Event(time=t0, kind="key-op", identity="ops-bot", action="keys:list"))
    events += [
        Event(time=t, kind="pull", identity="ops-bot", model=f"model-{i}", action="registry:pull")
        for i, t in enumerate(ts)
    ]
    attacks.append(Attack("late-key-misuse", "ops-bot", "-", t0, ts[-1]))
    t0 = day + 13 * 3600.0
    ts = [t0 + i * 210.0 for i in range(51)]
    events += [
        Event(time=t, kind="reveal", identity="person-1", model="customers", action="data:reveal") for t in ts
    ]
    attacks.append(Attack("slow-reveals", "person-1", "-", ts[0], ts[-1]))
    t0 = day + 15 * 3600.0
    ts = [t0 + i * 30.0 for i in range(20)]
    events += [
        Event(
            time=t,
            kind="guard-block",
            identity="3f2a9c0d5e6b4a1f",
            model="http://127.0.0.1",
            outcome="denied",
            source="gateway",
        )
        for t in ts
    ]
    attacks.append(Attack("proxy-guard-probing", "3f2a9c0d5e6b4a1f", "-", ts[0], ts[-1]))
    return events, attacks


def _within(client: str, named: str) -> bool:
    """One of an attack's client and a finding's client covers the other (an address, or the network of a
    spread-out spray: a finding may name the network, or one of the attack's addresses)."""
    if client == named:
        return True
    for address, network in ((client, named), (named, client)):
        if "/" in network and "/" not in address:
            try:
                return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
            except ValueError:
                return False
    return False


def score(findings: Iterable[Finding], attacks: Sequence[Attack], *, benign_events: int) -> Score:
    """Which attacks some finding names (same actor, overlapping time), and how many findings name none."""
    found: dict[str, float] = {}
    false = 0
    for f in findings:
        hit = [
            a
            for a in attacks
            if (f.identity == a.identity and a.identity != "-")
            or (a.client != "-" and _within(a.client, f.client))
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


__all__ = ["WEEK_START", "Attack", "Score", "adaptive_campaign", "benign_week", "campaign", "score"]

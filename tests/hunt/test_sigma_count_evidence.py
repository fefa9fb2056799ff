"""Issue 17 re-attack F1 (Sigma part): a count rule's finding must name the events that carry its count.

It used to name the first 200 events by time: rows added later to ``events.db`` (a forged row standing for
500 refused tokens) made up the count while the named, genuine events passed the evidence check. It now
names the rows with the largest counts (so a forged one is named, and refused by the check), and a count
spread over more rows than a finding names is reported at severity low.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bastion.events.schema import Event
from bastion.events.store import EventStore
from bastion.hunt.sigma import UNVERIFIABLE, CompiledRule, load_rules, run_rule

T0 = 1_796_000_400.0
SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


def _spray_rule() -> CompiledRule:
    return next(r for r in load_rules() if r.rule_id == SPRAY)


def _fail(t: float, count: int = 1) -> Event:
    return Event(time=t, kind="auth-failure", client="192.0.2.10", outcome="denied", count=count)


def test_the_row_that_makes_the_count_is_named(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append([_fail(T0 + i * 0.1) for i in range(250)])  # the genuine ones: a few refused tokens each
    store.append([_fail(T0 + 30.0, count=500)])  # one row standing for 500
    (found,) = run_rule(_spray_rule(), store, since=None, names={})
    big = [e.id for e in store.events() if e.count == 500]
    assert big and big[0] in found.event_ids  # before: the first 200 by time, all count 1, never this row
    assert found.severity == "high" and found.count >= 500


def test_a_count_spread_over_more_rows_than_named_is_low(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append([_fail(T0 + i * 0.02) for i in range(2_100)])
    (found,) = run_rule(replace(_spray_rule(), threshold=2_050), store, since=None, names={})
    assert found.severity == "low" and found.title.endswith(UNVERIFIABLE) and len(found.event_ids) == 2_000
    (normal,) = run_rule(_spray_rule(), store, since=None, names={})
    assert normal.severity == "high"

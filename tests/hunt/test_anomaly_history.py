"""The anomaly score over the last hour only (what ``respond --watch`` hunts): fitted on the week before."""

from __future__ import annotations

from pathlib import Path

from bastion.events import Event, EventStore
from bastion.hunt import hunt
from bastion.hunt.anomaly import HISTORY_S, score_windows
from bastion.hunt.simulate import DAY, WEEK_START, benign_week


def test_last_hour_scored_against_the_week_before(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    since = WEEK_START + 6 * DAY + 15 * 3600  # the watch's lookback: one hour
    spray = [
        Event(
            time=since + 900 + i * 3, kind="auth-failure", client="198.51.100.7", outcome="denied", status=401
        )
        for i in range(15)  # under every rule's threshold
    ]
    week = [e for e in benign_week(seed=0, apps=10) if e.time < since + 3600]  # now: since + 1 h
    store.append(week + spray)
    # fitted on the last hour alone (as before): too few windows for a model, nothing is scored
    assert score_windows(store, since=since) == []
    found = score_windows(store, since=since, history_s=HISTORY_S)
    assert [(f.client, f.features[0][0]) for f in found] == [("198.51.100.7", "error_ratio")]
    again = hunt(store=store, since=since, rules=[], cumulative=False, baseline=False)  # the fit is reused
    assert [f.key for f in again.findings] == [f.key for f in found]

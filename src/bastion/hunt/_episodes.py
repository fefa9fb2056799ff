"""The cumulative checks' rule ids, spans and caps, and what a crossing is: the episodes in which a sliding
window's sum (or count of distinct values) reaches a threshold (:mod:`bastion.hunt.cumulative`,
:mod:`bastion.hunt._reveals`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from bastion.events.collect import REMOTE_SOURCE

EXTRACTION_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000102"
TOKEN_SPRAY_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000302"  # noqa: S105 - a rule id
BULK_PULL_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000402"
REVEAL_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000602"
GUARD_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000802"
TECHNIQUES = {
    EXTRACTION_RULE: ("AML.T0024.002", "AML.T0040"),
    TOKEN_SPRAY_RULE: ("AML.T0012",),
    BULK_PULL_RULE: ("AML.T0035", "AML.T0025"),
    REVEAL_RULE: ("AML.T0036", "AML.T0025"),
    GUARD_RULE: ("AML.T0051", "AML.T0054"),
}
HOUR, DAY = 3600.0, 86_400.0
MAX_EVENT_IDS = 200
MAX_COUNT_IDS = 2000  # rows a rollup finding may name to carry its whole threshold
LOCAL_ONLY = f" AND source <> '{REMOTE_SOURCE}'"  # the home's own events (as bastion.hunt.sigma)
UNVERIFIABLE = " (count rests on more events than it names: not verifiable from them)"

Episode = tuple[int, int, int]  # (start, crossing, peak): positions in the series, the largest sum


def episodes(
    points: list[tuple[float, int, str]], span: float, threshold: int, *, distinct: bool
) -> list[Episode]:
    """Over sorted (time, amount, value) points, every run in which the last ``span`` (exclusive) holds a
    sum of amounts (or, ``distinct``, of distinct values) of ``threshold`` or more: one episode per run."""
    out: list[Episode] = []
    seen: dict[str, int] = defaultdict(int)
    total = lo = 0
    current: list[int] | None = None
    for hi, (t, amount, value) in enumerate(points):
        while lo < hi and points[lo][0] <= t - span:
            total -= points[lo][1]
            seen[points[lo][2]] -= 1
            if not seen[points[lo][2]]:
                del seen[points[lo][2]]
            lo += 1
        if (len(seen) if distinct else total) < threshold:
            current = None  # the level fell below the threshold before this point: a later run is new
        total += amount
        seen[value] += 1
        level = len(seen) if distinct else total
        if level >= threshold:
            if current is None:
                current = [lo, hi, level]
                out.append((lo, hi, level))
            current[2] = max(current[2], level)
            out[-1] = (current[0], current[1], current[2])
    return out


def rolling(windows: dict[int, int], span: int, threshold: int) -> list[Episode]:
    """Episodes over hourly counts: positions are window numbers."""
    ws = sorted(windows)
    return [
        (ws[a], ws[b], peak)
        for a, b, peak in episodes([(float(w), windows[w], "") for w in ws], span, threshold, distinct=False)
    ]


def sliding(times: list[float], span: float, threshold: int) -> list[Episode]:
    """Episodes over sorted event times: positions are indexes into ``times``."""
    return episodes([(t, 1, "") for t in times], span, threshold, distinct=False)


def uncovered(
    daily: list[Episode], hourly: list[Episode], span: float, at: Callable[[int], float]
) -> list[Episode]:
    """The daily episodes in which no hourly episode crossed (that one already names the activity)."""
    crossed = [at(c) for _, c, _ in hourly]
    return [d for d in daily if not any(at(d[0]) <= c <= at(d[1]) + span for c in crossed)]

"""Anomaly score per identity/client hour: an Isolation Forest over behaviour, with the features behind it.

Implements Liu, Ting & Zhou, "Isolation Forest" (ICDM 2008) through scikit-learn's ``IsolationForest``. The
unit is one (identity, client, hour) window of events; its features are

* ``rate`` — events in the window (log1p);
* ``error_ratio`` — share of events that were denied or failed;
* ``model_breadth`` — distinct models touched (log1p);
* ``mix_distance`` — total-variation distance between the window's event-kind mix and the population's.
  This stands in for the input-distribution distance: the gateway records no per-request input statistics
  in the audit log (its extraction monitor judges inputs itself and its flags arrive as events);
* ``off_hours`` — hours outside 08:00–18:00 UTC of the window's hour.

A window is reported when its isolation score is beyond ``min_score`` *and* at least one feature deviates by
more than ``min_z`` robust z-scores (|x − median| / (1.4826·MAD), MAD floored) from the population, so the
model's always-present most-isolated windows are not reported when nothing in them is unusual. Deviation from
the paper: the contributing features are ranked by that robust z-score (the forest itself gives no
attributions); the score is ``-score_samples`` (higher is more anomalous, about 0.3–0.8).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from bastion.errors import DependencyMissing
from bastion.events.store import WINDOW_S, EventStore, rollup_table, window_models_table
from bastion.hunt.report import Finding

FEATURES: tuple[str, ...] = ("rate", "error_ratio", "model_breadth", "mix_distance", "off_hours")
_MIX_KINDS: tuple[str, ...] = (
    "request",
    "auth-failure",
    "rate-limit",
    "pull",
    "reveal",
    "key-op",
    "guard-block",
)


def _windows(store: EventStore, since: float | None) -> tuple[list[tuple[str, str, int]], Any, Any, Any]:
    """(keys, event counts, non-ok counts, kind-mix matrix) per window, from the store's hourly rollup."""
    import numpy as np

    r, m = rollup_table, window_models_table
    first_w = None if since is None else int(since // WINDOW_S)
    q = sa.select(r.c.identity, r.c.client, r.c.w, r.c.kind, r.c.outcome, r.c.n).where(r.c.kind != "response")
    qm = sa.select(m.c.identity, m.c.client, m.c.w, sa.func.count()).group_by(m.c.identity, m.c.client, m.c.w)
    if first_w is not None:
        q, qm = q.where(r.c.w >= first_w), qm.where(m.c.w >= first_w)
    index: dict[tuple[str, str, int], int] = {}
    totals: dict[int, list[float]] = defaultdict(lambda: [0.0] * (len(_MIX_KINDS) + 3))
    col = {k: i for i, k in enumerate(_MIX_KINDS)}
    with store.engine.connect() as conn:
        for identity, client, w, kind, outcome, n in conn.execute(q):
            i = index.setdefault((identity, client, int(w)), len(index))
            row = totals[i]
            row[col.get(kind, len(_MIX_KINDS))] += n
            row[-2] += n if outcome != "ok" else 0
        breadth = np.zeros(len(index))
        for identity, client, w, count in conn.execute(qm):
            at = index.get((identity, client, int(w)))
            if at is not None:
                breadth[at] = count
    keys = list(index)
    table = np.array([totals[i] for i in range(len(keys))], dtype=float).reshape(
        len(keys), len(_MIX_KINDS) + 3
    )
    mix = table[:, : len(_MIX_KINDS) + 1]
    return keys, mix, table[:, -2], breadth


def score_windows(
    store: EventStore,
    *,
    since: float | None = None,
    min_score: float = 0.62,
    min_z: float = 8.0,
    min_events: int = 5,
    seed: int = 0,
) -> list[Finding]:
    """Anomalous (identity, client, hour) windows as findings (rule id ``anomaly.behaviour``)."""
    try:
        import numpy as np
        from sklearn.ensemble import IsolationForest
    except ImportError as exc:
        raise DependencyMissing(
            "scikit-learn is not installed", hint="pip install 'bastion-ml[hunt]'"
        ) from exc
    keys, mix, errs, breadth = _windows(store, since)
    if len(keys) < 20:
        return []
    n = mix.sum(axis=1)
    shares = mix / n[:, None]
    population = mix.sum(axis=0) / n.sum()
    hours = np.array([w % 24 for _, _, w in keys], dtype=float)
    x = np.column_stack(
        [
            np.log1p(n),
            errs / n,
            np.log1p(breadth),
            0.5 * np.abs(shares - population).sum(axis=1),
            np.maximum(0.0, 8.0 - hours) + np.maximum(0.0, hours - 17.0),
        ]
    )
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(keys)), random_state=seed)
    forest.fit(x)
    scores = -forest.score_samples(x)
    median = np.median(x, axis=0)
    mad = np.maximum(1.4826 * np.median(np.abs(x - median), axis=0), 0.05)
    z = (x - median) / mad
    out = []
    for i in np.flatnonzero((scores >= min_score) & (np.abs(z).max(axis=1) >= min_z) & (n >= min_events)):
        identity, client, w = keys[int(i)]
        lo = max(float(w * WINDOW_S), since or 0.0)
        hit = store.query(
            f"SELECT id, ts FROM {store.table} WHERE identity = :i AND client = :c "  # noqa: S608 - ours; bound
            "AND ts >= :lo AND ts < :hi ORDER BY ts, id LIMIT 200",
            {"i": identity, "c": client, "lo": lo, "hi": float((w + 1) * WINDOW_S)},
        )
        order = np.argsort(-np.abs(z[i]))[:3]
        feats = tuple((FEATURES[j], round(float(x[i, j]), 4), round(float(z[i, j]), 2)) for j in order)
        out.append(
            Finding(
                rule_id="anomaly.behaviour",
                title="Unusual behaviour for this identity/client (isolation forest)",
                techniques=(),
                severity="medium",
                identity=identity,
                client=client,
                first_seen=float(hit[0].ts) if hit else lo,
                last_seen=float(hit[-1].ts) if hit else float((w + 1) * WINDOW_S),
                event_ids=tuple(int(h.id) for h in hit),
                count=int(n[i]),
                key=f"anomaly.behaviour|identity={identity}|client={client}|w={w}",
                score=round(float(scores[i]), 4),
                features=feats,
            )
        )
    return out


__all__ = ["FEATURES", "score_windows"]

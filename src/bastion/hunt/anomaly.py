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

from typing import Any

from bastion.errors import DependencyMissing
from bastion.events.store import EventStore
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
WINDOW_S = 3600


def _window_sql(store: EventStore, since: bool) -> str:
    bucket = (
        f"CAST(FLOOR(ts / {WINDOW_S}) AS BIGINT)"
        if store.dialect == "postgresql"
        else f"CAST(ts / {WINDOW_S} AS INTEGER)"
    )
    mix = ", ".join(
        f"SUM(CASE WHEN kind = '{k}' THEN 1 ELSE 0 END) AS k{i}" for i, k in enumerate(_MIX_KINDS)
    )
    return (
        f"SELECT identity, client, {bucket} AS w, COUNT(*) AS n, "  # noqa: S608 - built from compiled rules; values are bound
        f"SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS errs, COUNT(DISTINCT model) AS breadth, "
        f"MIN(ts) AS first, MAX(ts) AS last, MIN(id) AS first_id, {mix} "
        f"FROM {store.table} WHERE kind <> 'response'{' AND ts >= :since' if since else ''} "
        f"GROUP BY identity, client, {bucket}"
    )


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
    rows: list[Any] = store.query(_window_sql(store, since is not None), {"since": since} if since else {})
    if len(rows) < 20:
        return []
    n = np.array([r.n for r in rows], dtype=float)
    mix = np.array([[getattr(r, f"k{i}") for i in range(len(_MIX_KINDS))] for r in rows], dtype=float)
    other = n - mix.sum(axis=1)
    shares = np.column_stack([mix, other]) / n[:, None]
    population = np.column_stack([mix, other]).sum(axis=0) / n.sum()
    hours = np.array([int(r.w) % 24 for r in rows], dtype=float)
    x = np.column_stack(
        [
            np.log1p(n),
            np.array([r.errs for r in rows], dtype=float) / n,
            np.log1p(np.array([r.breadth for r in rows], dtype=float)),
            0.5 * np.abs(shares - population).sum(axis=1),
            np.maximum(0.0, 8.0 - hours) + np.maximum(0.0, hours - 17.0),
        ]
    )
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(rows)), random_state=seed)
    forest.fit(x)
    scores = -forest.score_samples(x)
    median = np.median(x, axis=0)
    mad = np.maximum(1.4826 * np.median(np.abs(x - median), axis=0), 0.05)
    z = (x - median) / mad
    out = []
    for i in np.flatnonzero((scores >= min_score) & (np.abs(z).max(axis=1) >= min_z) & (n >= min_events)):
        row = rows[int(i)]
        order = np.argsort(-np.abs(z[i]))[:3]
        feats = tuple((FEATURES[j], round(float(x[i, j]), 4), round(float(z[i, j]), 2)) for j in order)
        out.append(
            Finding(
                rule_id="anomaly.behaviour",
                title="Unusual behaviour for this identity/client (isolation forest)",
                techniques=(),
                severity="medium",
                identity=str(row.identity),
                client=str(row.client),
                first_seen=float(row.first),
                last_seen=float(row.last),
                event_ids=(int(row.first_id),),
                count=int(row.n),
                key=f"anomaly.behaviour|identity={row.identity}|client={row.client}|w={int(row.w)}",
                score=round(float(scores[i]), 4),
                features=feats,
            )
        )
    return out


__all__ = ["FEATURES", "score_windows"]

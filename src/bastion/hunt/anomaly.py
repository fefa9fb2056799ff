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

A hunt over recent events only (``since``: ``respond --watch`` scores the last hour every minute, in a
background thread, :mod:`bastion.respond.watch`) fits the forest, the population's kind mix and the robust
z-scores on the week before (``HISTORY_S``) and scores only the recent windows: an hour alone holds too few
windows for a model, and a quiet hour's windows judged against each other flag ordinary night traffic. The
fit is kept per hour, so a pass costs the rollup read of the last hour and a scoring pass (milliseconds),
not a refit.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bastion.errors import DependencyMissing
from bastion.events.store import WINDOW_S, EventStore, rollup_table, window_models_table
from bastion.hunt.report import Finding

MIN_WINDOWS = 20  # fewer windows than this: no model
HISTORY_S = 7 * 86_400.0  # what hunt(since=...) fits the model on: the week before
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


def _windows(
    store: EventStore, since: float | None, before_w: int | None = None
) -> tuple[list[tuple[str, str, int]], Any, Any, Any]:
    """(keys, event counts, non-ok counts, kind-mix matrix) per window, from the store's hourly rollup
    (windows from ``since``'s, and before window ``before_w`` when given)."""
    import numpy as np

    r, m = rollup_table, window_models_table
    first_w = None if since is None else int(since // WINDOW_S)
    q = sa.select(r.c.identity, r.c.client, r.c.w, r.c.kind, r.c.outcome, r.c.n).where(r.c.kind != "response")
    qm = sa.select(m.c.identity, m.c.client, m.c.w, sa.func.count()).group_by(m.c.identity, m.c.client, m.c.w)
    if first_w is not None:
        q, qm = q.where(r.c.w >= first_w), qm.where(m.c.w >= first_w)
    if before_w is not None:
        q, qm = q.where(r.c.w < before_w), qm.where(m.c.w < before_w)
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


def _features(keys: list[tuple[str, str, int]], mix: Any, errs: Any, breadth: Any, population: Any) -> Any:
    import numpy as np

    n = mix.sum(axis=1)
    shares = mix / n[:, None]
    hours = np.array([w % 24 for _, _, w in keys], dtype=float)
    return np.column_stack(
        [
            np.log1p(n),
            errs / n,
            np.log1p(breadth),
            0.5 * np.abs(shares - population).sum(axis=1),
            np.maximum(0.0, 8.0 - hours) + np.maximum(0.0, hours - 17.0),
        ]
    )


@dataclass(frozen=True)
class _Model:
    forest: Any
    population: Any
    median: Any
    mad: Any


def _fit(
    keys: list[tuple[str, str, int]], mix: Any, errs: Any, breadth: Any, seed: int
) -> tuple[_Model, Any]:
    import numpy as np
    from sklearn.ensemble import IsolationForest

    population = mix.sum(axis=0) / mix.sum()
    x = _features(keys, mix, errs, breadth, population)
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(keys)), random_state=seed)
    forest.fit(x)
    median = np.median(x, axis=0)
    mad = np.maximum(1.4826 * np.median(np.abs(x - median), axis=0), 0.05)
    return _Model(forest, population, median, mad), x


_fits: dict[tuple[str, int, int, int], _Model] = {}
_fits_lock = threading.Lock()


def _history_model(store: EventStore, since: float, history_s: float, seed: int) -> _Model | None:
    """The model of the ``history_s`` before ``since``'s window, fitted once per hour (cached)."""
    end_w = int(since // WINDOW_S)
    key = (str(store.url), int((since - history_s) // WINDOW_S), end_w, seed)
    with _fits_lock:
        cached = _fits.get(key)
    if cached is not None:
        return cached
    keys, mix, errs, breadth = _windows(store, since - history_s, before_w=end_w)
    if len(keys) < MIN_WINDOWS:
        return None
    model, _ = _fit(keys, mix, errs, breadth, seed)
    with _fits_lock:
        if len(_fits) > 64:
            _fits.clear()
        _fits[key] = model
    return model


def score_windows(
    store: EventStore,
    *,
    since: float | None = None,
    min_score: float = 0.62,
    min_z: float = 8.0,
    min_events: int = 5,
    seed: int = 0,
    history_s: float | None = None,
) -> list[Finding]:
    """Anomalous (identity, client, hour) windows as findings (rule id ``anomaly.behaviour``).

    With ``since`` and ``history_s``, the model is fitted on the ``history_s`` before ``since`` (once per
    hour: ``respond --watch`` scores the last hour every minute and reuses it) and scores only the windows
    since ``since``; without history enough (fewer than ``MIN_WINDOWS`` windows), on the scored windows
    themselves.
    """
    try:
        import numpy as np
        import sklearn.ensemble  # noqa: F401 - the dependency check
    except ImportError as exc:
        raise DependencyMissing(
            "scikit-learn is not installed", hint="pip install 'bastion-ml[hunt]'"
        ) from exc
    keys, mix, errs, breadth = _windows(store, since)
    if not keys:
        return []
    model = None
    if since is not None and history_s:
        model = _history_model(store, since, history_s, seed)
    if model is None:
        if len(keys) < MIN_WINDOWS:
            return []
        model, x = _fit(keys, mix, errs, breadth, seed)
    else:
        x = _features(keys, mix, errs, breadth, model.population)
    n = mix.sum(axis=1)
    scores = -model.forest.score_samples(x)
    z = (x - model.median) / model.mad
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


__all__ = ["FEATURES", "HISTORY_S", "MIN_WINDOWS", "score_windows"]

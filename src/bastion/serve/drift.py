"""Live behaviour monitoring: input drift per feature, prediction-distribution shift and confidence collapse.

A :class:`DriftReference` is fitted once on the training inputs and the model's probabilities on them:
per-feature decile bin edges and proportions, the predicted-class distribution and the mean top-class
confidence. A :class:`DriftMonitor` keeps the last ``window`` live rows (a ring buffer, O(window·d) memory)
and compares them with the reference:

* input drift — the Population Stability Index per feature, PSI = Σ (p_live − p_ref) · ln(p_live / p_ref)
  over the reference's decile bins (Siddiqi, *Credit Risk Scorecards*, 2006; the usual reading: < 0.1
  stable, 0.1–0.25 moderate, > 0.25 shifted). Deviation: proportions are smoothed by 1e-4 so an empty bin
  does not give an infinite score;
* prediction shift — the same PSI on the predicted-class distribution;
* confidence collapse — the drop of the mean top-class probability below the reference's.

An alert is raised when a score crosses its configured threshold and at least ``min_samples`` live rows
have been seen. A :class:`~bastion.serve.app.Gateway` given ``drift=DriftMonitor(...)`` feeds it every
numeric inference batch (the model's own probabilities, before any API watermark) and publishes
``bastion_drift_*{model=...}`` gauges on ``/metrics`` (:meth:`DriftMonitor.register_metrics`).

Every ``check_every`` live rows the monitor evaluates its window; when the set of raised alert kinds
(``input``, ``prediction``, ``confidence``) changes, :meth:`DriftMonitor.observe` returns a
:class:`DriftTransition` — the gateway logs it as a structured warning and appends one ``serve:drift-alert``
audit entry (once per transition, not per request). Each evaluation also replaces a small JSON state file
(``<home>/serve/drift/<model>.json``, written to a temporary file then renamed) that the inventory reads
(:func:`read_state`): the drift state of each served model without a call to the gateway. ``bastion serve``
builds the monitor from ``[serve.drift]`` with :func:`bastion.serve.drift_setup.build_monitor` (the training
reference: the model's recorded built-in dataset or an ``.npz`` file; with neither, drift fails closed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.files import atomic_write

STATE_DIR = ("serve", "drift")  # under the project home
ALERT_KINDS = {"input drift": "input", "prediction shift": "prediction", "confidence collapse": "confidence"}

SMOOTH = 1e-4


def psi(reference: np.ndarray, live: np.ndarray) -> float:
    """Population Stability Index between two proportion vectors (smoothed, renormalised)."""
    p = (np.asarray(reference, dtype=np.float64) + SMOOTH) / (1.0 + SMOOTH * len(reference))
    q = (np.asarray(live, dtype=np.float64) + SMOOTH) / (1.0 + SMOOTH * len(live))
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class DriftConfig:
    window: int = 1000
    min_samples: int = 200
    feature_psi_alert: float = 0.25
    prediction_psi_alert: float = 0.25
    confidence_drop_alert: float = 0.15
    check_every: int = 50

    def __post_init__(self) -> None:
        if self.window < 10 or not 1 <= self.min_samples <= self.window:
            raise InvalidInput("drift: window >= 10 and 1 <= min_samples <= window")
        if not 1 <= self.check_every <= self.window:
            raise InvalidInput("drift: 1 <= check_every <= window")
        for name in ("feature_psi_alert", "prediction_psi_alert", "confidence_drop_alert"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise InvalidInput(f"drift: {name} must be a positive number")


@dataclass(frozen=True)
class DriftReference:
    """What normal looks like: per-feature bin edges and proportions, classes, confidence."""

    edges: tuple[tuple[float, ...], ...]  # per feature, the inner bin edges
    proportions: tuple[tuple[float, ...], ...]
    class_proportions: tuple[float, ...]
    mean_confidence: float

    @classmethod
    def fit(cls, *, x: np.ndarray, probs: np.ndarray, bins: int = 10) -> DriftReference:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        probs = np.asarray(probs, dtype=np.float64)
        if len(x) < 2 * bins or probs.ndim != 2 or len(probs) != len(x):
            raise InvalidInput("drift reference: need at least 2*bins rows and one probability row per input")
        edges, props = [], []
        for j in range(x.shape[1]):
            inner = np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
            edges.append(tuple(float(e) for e in inner))
            props.append(tuple(float(v) for v in _proportions(x[:, j], inner)))
        classes = np.bincount(probs.argmax(1), minlength=probs.shape[1]) / len(probs)
        return cls(
            edges=tuple(edges),
            proportions=tuple(props),
            class_proportions=tuple(float(v) for v in classes),
            mean_confidence=float(probs.max(1).mean()),
        )

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": [list(e) for e in self.edges],
            "proportions": [list(p) for p in self.proportions],
            "class_proportions": list(self.class_proportions),
            "mean_confidence": self.mean_confidence,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReference:
        try:
            return cls(
                edges=tuple(tuple(float(v) for v in e) for e in d["edges"]),
                proportions=tuple(tuple(float(v) for v in p) for p in d["proportions"]),
                class_proportions=tuple(float(v) for v in d["class_proportions"]),
                mean_confidence=float(d["mean_confidence"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("drift reference: malformed") from exc


def _proportions(values: np.ndarray, inner_edges: Any) -> np.ndarray:
    idx = np.searchsorted(np.asarray(inner_edges, dtype=np.float64), values, side="right")
    return np.bincount(idx, minlength=len(inner_edges) + 1) / max(len(values), 1)


@dataclass(frozen=True)
class DriftReport:
    samples: int
    feature_psi: tuple[float, ...]
    prediction_psi: float
    mean_confidence: float
    confidence_drop: float
    alerts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def max_feature_psi(self) -> float:
        return max(self.feature_psi, default=0.0)

    @property
    def kinds(self) -> frozenset[str]:
        """The raised alert kinds: ``input``, ``prediction``, ``confidence``."""
        return frozenset(ALERT_KINDS[a.split(":", 1)[0]] for a in self.alerts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "feature_psi": list(self.feature_psi),
            "max_feature_psi": self.max_feature_psi,
            "prediction_psi": self.prediction_psi,
            "mean_confidence": self.mean_confidence,
            "confidence_drop": self.confidence_drop,
            "alerts": list(self.alerts),
        }


@dataclass(frozen=True)
class DriftTransition:
    """The raised alert kinds changed: ``raised`` are new, ``cleared`` are gone."""

    report: DriftReport
    raised: tuple[str, ...]
    cleared: tuple[str, ...]

    def details(self) -> dict[str, Any]:
        r = self.report
        return {
            "raised": list(self.raised),
            "cleared": list(self.cleared),
            "alerts": list(r.alerts),
            "samples": r.samples,
            "max_feature_psi": round(r.max_feature_psi, 6),
            "prediction_psi": round(r.prediction_psi, 6),
            "confidence_drop": round(r.confidence_drop, 6),
        }


class DriftMonitor:
    """Sliding-window drift statistics of one model's live traffic against its reference (thread-safe).

    ``state_file``: replaced atomically at every evaluation with :meth:`state` (plus ``labels``).
    """

    def __init__(
        self,
        *,
        reference: DriftReference,
        config: DriftConfig | None = None,
        state_file: str | Path | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        self.reference = reference
        self.config = config or DriftConfig()
        self.state_file = Path(state_file) if state_file is not None else None
        self.labels = dict(labels or {})
        self._raised: frozenset[str] = frozenset()
        self._check_lock = threading.Lock()
        d, w = reference.n_features, self.config.window
        self._x = np.zeros((w, d), dtype=np.float64)
        self._pred = np.zeros(w, dtype=np.int64)
        self._conf = np.zeros(w, dtype=np.float64)
        self._next = 0
        self._seen = 0
        self._lock = threading.Lock()

    def observe(self, x: np.ndarray, probs: np.ndarray) -> DriftTransition | None:
        """Record a batch of live inputs and the model's probabilities for them; every ``check_every`` rows
        evaluate the window and return a :class:`DriftTransition` when the raised alert kinds changed."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        probs = np.asarray(probs, dtype=np.float64)
        if x.shape[1] != self.reference.n_features or probs.shape != (
            len(x),
            len(self.reference.class_proportions),
        ):
            raise InvalidInput("drift: live batch does not match the reference's features or classes")
        w, every = self.config.window, self.config.check_every
        with self._lock:
            before = self._seen
            for start in range(0, len(x), w):
                xs, ps = x[start : start + w], probs[start : start + w]
                idx = (self._next + np.arange(len(xs))) % w
                self._x[idx] = xs
                self._pred[idx] = ps.argmax(1)
                self._conf[idx] = ps.max(1)
                self._next = int((self._next + len(xs)) % w)
                self._seen += len(xs)
            due = self._seen // every != before // every
        return self.check() if due else None

    def check(self) -> DriftTransition | None:
        """Evaluate the window now: write the state file; a transition when the alert kinds changed."""
        with self._check_lock:
            report = self.report()
            kinds = report.kinds
            previous, self._raised = self._raised, kinds
            if self.state_file is not None:
                write_state(self.state_file, self.state(report))
        if kinds == previous:
            return None
        return DriftTransition(report, tuple(sorted(kinds - previous)), tuple(sorted(previous - kinds)))

    def state(self, report: DriftReport | None = None) -> dict[str, Any]:
        """The drift state the inventory shows: ``alert``, ``ok`` or ``warming-up`` (below min_samples)."""
        r = report or self.report()
        status = "alert" if r.alerts else "ok" if r.samples >= self.config.min_samples else "warming-up"
        summary = {k: v for k, v in r.to_dict().items() if k != "feature_psi"}
        return {
            **self.labels,
            "state": status,
            **summary,
            "thresholds": {
                "feature_psi": self.config.feature_psi_alert,
                "prediction_psi": self.config.prediction_psi_alert,
                "confidence_drop": self.config.confidence_drop_alert,
                "min_samples": self.config.min_samples,
                "window": self.config.window,
            },
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }

    def report(self) -> DriftReport:
        cfg, ref = self.config, self.reference
        with self._lock:
            n = min(self._seen, cfg.window)
            x, pred, conf = self._x[:n].copy(), self._pred[:n].copy(), self._conf[:n].copy()
        if n == 0:
            return DriftReport(0, tuple(0.0 for _ in ref.edges), 0.0, ref.mean_confidence, 0.0)
        feats = tuple(
            psi(np.asarray(ref.proportions[j]), _proportions(x[:, j], ref.edges[j]))
            for j in range(ref.n_features)
        )
        classes = np.bincount(pred, minlength=len(ref.class_proportions)) / n
        pred_psi = psi(np.asarray(ref.class_proportions), classes)
        mean_conf = float(conf.mean())
        drop = max(0.0, ref.mean_confidence - mean_conf)
        alerts: list[str] = []
        if n >= cfg.min_samples:
            shifted = [j for j, v in enumerate(feats) if v > cfg.feature_psi_alert]
            if shifted:
                alerts.append(f"input drift: {len(shifted)} feature(s) PSI > {cfg.feature_psi_alert:g}")
            if pred_psi > cfg.prediction_psi_alert:
                alerts.append(f"prediction shift: PSI {pred_psi:.3f} > {cfg.prediction_psi_alert:g}")
            if drop > cfg.confidence_drop_alert:
                alerts.append(
                    f"confidence collapse: mean {mean_conf:.3f} vs reference {ref.mean_confidence:.3f}"
                )
        return DriftReport(n, feats, pred_psi, mean_conf, drop, tuple(alerts))

    def register_metrics(self, registry: Any, *, model: str) -> None:
        """Gauges in a prometheus ``registry``, computed when ``/metrics`` is scraped (one report each)."""
        from prometheus_client import Gauge

        cache: dict[str, Any] = {}

        def value(key: str) -> Callable[[], float]:
            def read() -> float:
                if key == "samples" or "report" not in cache:  # the first gauge of each scrape refreshes it
                    cache["report"] = self.report()
                r: DriftReport = cache["report"]
                return float(
                    {
                        "samples": r.samples,
                        "feature_psi_max": r.max_feature_psi,
                        "prediction_psi": r.prediction_psi,
                        "confidence_drop": r.confidence_drop,
                        "alerts": len(r.alerts),
                    }[key]
                )

            return read

        helps = {
            "samples": "Live rows in the drift window",
            "feature_psi_max": "Largest per-feature PSI of the window against the training reference",
            "prediction_psi": "PSI of the predicted-class distribution against the reference",
            "confidence_drop": "Drop of the mean top-class probability below the reference",
            "alerts": "Drift alerts currently raised (thresholds in DriftConfig)",
        }
        for key, text in helps.items():
            g = Gauge(f"bastion_drift_{key}", text, ["model"], registry=registry)
            g.labels(model).set_function(value(key))

    def metrics(self, model: str) -> dict[str, float]:
        """Gauges for ``/metrics`` (``bastion_drift_*{model=...}``)."""
        r = self.report()
        return {
            f'bastion_drift_samples{{model="{model}"}}': float(r.samples),
            f'bastion_drift_feature_psi_max{{model="{model}"}}': r.max_feature_psi,
            f'bastion_drift_prediction_psi{{model="{model}"}}': r.prediction_psi,
            f'bastion_drift_confidence_drop{{model="{model}"}}': r.confidence_drop,
            f'bastion_drift_alerts{{model="{model}"}}': float(len(r.alerts)),
        }


def state_path(home: str | Path, model: str) -> Path:
    """Where the gateway serving ``model`` writes its drift state."""
    if not model or "/" in model or "\\" in model or model.startswith("."):
        raise InvalidInput(f"drift: not a model name for a state file: {model!r}")
    return Path(home).joinpath(*STATE_DIR, f"{model}.json")


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically (temporary file in the same directory, then rename; mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(state, sort_keys=True))


def read_state(home: str | Path, model: str) -> dict[str, Any] | None:
    """The last drift state a gateway wrote for ``model`` (None: never served with drift, or unreadable)."""
    try:
        data = json.loads(state_path(home, model).read_text(encoding="utf-8"))
    except (OSError, ValueError, InvalidInput):
        return None
    return data if isinstance(data, dict) else None


def __getattr__(name: str) -> Any:
    """``build_monitor`` and ``training_reference`` moved to :mod:`bastion.serve.drift_setup` (which imports
    this module); they stay importable from here."""
    if name in ("build_monitor", "training_reference"):
        from bastion.serve import drift_setup

        return getattr(drift_setup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALERT_KINDS",
    "DriftConfig",
    "DriftMonitor",
    "DriftReference",
    "DriftReport",
    "DriftTransition",
    "psi",
    "read_state",
    "state_path",
    "write_state",
]

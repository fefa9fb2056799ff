"""What the dashboard shows, read through the vault's public API as the signed-in identity.

Every function takes the session's :class:`bastion.vault.Vault` (opened with the caller's token), so the
library's permission checks — not the dashboard — decide what is visible, and each read is audit-logged as
that identity's read. Results are plain frozen dataclasses; the templates escape every value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import AccessDenied, BastionError, IntegrityError

# Audit-log actions that are alerts, and how the dashboard names their source.
ALERT_ACTIONS: Mapping[str, str] = {
    "serve:monitor-flag": "gateway: extraction monitor",
    "serve:theft-flag": "gateway: theft defence",
    "serve:theft-evidence": "gateway: theft evidence",
    "serve:drift-alert": "gateway: drift",
    "guard:prompt-blocked": "guard: prompt blocked",
    "guard:prompt-flagged": "guard: prompt flagged (shadow)",
    "guard:output-blocked": "guard: output blocked",
    "guard:output-flagged": "guard: output flagged (shadow)",
    "guard:output-redacted": "guard: output redacted",
}
LOG_WINDOW = 5000  # newest audit entries the alert and drift pages read
REPORT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class LogState:
    """The audit log's verification: ``OK`` (consistent and fully witnessed), ``UNWITNESSED`` (consistent,
    but no witness holds its newest heads) or ``FAILED`` (tampered or unreadable)."""

    status: str
    size: int = 0
    root_hash: str = ""
    witnesses: tuple[Mapping[str, Any], ...] = ()
    unwitnessed_entries: int = 0
    message: str = ""


@dataclass(frozen=True)
class Alert:
    index: int
    timestamp: str
    source: str
    action: str
    identity: str
    outcome: str
    summary: str


@dataclass(frozen=True)
class AuditView:
    ref: str
    grade: str | None
    created: str | None
    budget: str | None
    reasons: tuple[str, ...]
    families: Mapping[str, Mapping[str, Any]]
    report_sha256: str | None
    curves: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    report_found: bool = False
    unattested: int = 0  # audit notes not attested with this home's key ring (not shown)


@dataclass(frozen=True)
class DriftView:
    model: str
    version: str
    state: str
    samples: int | None
    figures: Mapping[str, float]
    thresholds: Mapping[str, float]
    alerts: tuple[str, ...]
    updated_at: str | None
    history: tuple[tuple[str, float], ...] = ()  # (time, max feature PSI) per drift-alert entry


def log_state(vault: Any) -> LogState:
    """Recompute the log against its signed heads and witnesses (``vault.log_verify()``)."""
    try:
        result = vault.log_verify()
    except AccessDenied:
        raise
    except BastionError as exc:
        return LogState(status="FAILED", message=str(exc))
    witnesses = tuple(w.to_dict() for w in result.witnesses)
    witnessed = max((w.size for w in result.witnesses), default=0)
    status = "OK" if witnesses and witnessed >= result.size else "UNWITNESSED"
    if not witnesses:
        message = (
            "no [[log.witness]] is configured: whoever holds this home and its passphrase could truncate "
            "or rewrite the log undetected"
        )
    elif witnessed < result.size:
        message = f"{result.size - witnessed} newest entries are not witnessed yet"
    else:
        message = "every entry is held by a witness"
    return LogState(
        status=status,
        size=result.size,
        root_hash=result.root_hash.hex(),
        witnesses=witnesses,
        unwitnessed_entries=max(0, result.size - witnessed),
        message=message,
    )


def recent_entries(vault: Any, *, window: int = LOG_WINDOW) -> list[Any]:
    """The newest ``window`` audit-log entries, oldest first."""
    size = vault.log_head().size
    start = max(0, size - window)
    return list(vault.log_entries(start=start, limit=window))


def _denied_requests(entry: Any) -> list[Alert]:
    """A batched ``serve:requests`` entry as alerts: denied requests per identity, unauthenticated ones."""
    out: list[Alert] = []
    details = entry.details or {}
    denied: dict[tuple[str, str], int] = {}
    for r in details.get("requests") or []:
        if isinstance(r, Mapping) and str(r.get("decision", "")).startswith("deny"):
            key = (str(r.get("identity", "-")), str(r.get("decision")))
            denied[key] = denied.get(key, 0) + 1
    for (identity, decision), n in sorted(denied.items()):
        out.append(
            Alert(
                entry.index,
                entry.timestamp,
                "gateway: denied requests",
                entry.action,
                identity,
                "denied",
                f"{n} request(s) {decision}",
            )
        )
    unauth = details.get("unauthenticated")
    refused = {
        str(k): v
        for k, v in ((unauth.get("by_decision") or {}) if isinstance(unauth, Mapping) else {}).items()
        if str(k).startswith("deny") and isinstance(v, int) and v > 0
    }
    if isinstance(unauth, Mapping) and refused:  # public endpoints (health) are allowed without a token
        by = ", ".join(f"{k}: {v}" for k, v in sorted(refused.items()))
        out.append(
            Alert(
                entry.index,
                entry.timestamp,
                "gateway: unauthenticated",
                entry.action,
                "-",
                "denied",
                f"{sum(refused.values())} request(s) without a valid token ({by})",
            )
        )
    return out


def _summary(details: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in details.items() if k not in ("identity", "requests")}
    text = json.dumps(keep, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def alerts(entries: Sequence[Any]) -> list[Alert]:
    """Gateway and guard alerts, token failures and access denials, newest first."""
    out: list[Alert] = []
    for e in entries:
        details = dict(e.details or {})
        if e.action in ALERT_ACTIONS:
            identity = str(details.get("identity") or details.get("client") or e.actor)
            out.append(
                Alert(
                    e.index,
                    e.timestamp,
                    ALERT_ACTIONS[e.action],
                    e.action,
                    identity,
                    e.outcome,
                    _summary(details),
                )
            )
        elif e.action == "serve:requests":
            out.extend(_denied_requests(e))
        elif e.action == "auth" and e.outcome == "denied":
            out.append(
                Alert(
                    e.index,
                    e.timestamp,
                    "authentication failure",
                    e.action,
                    e.target,
                    e.outcome,
                    "a token was refused" + (f" ({details['reason']})" if details.get("reason") else ""),
                )
            )
        elif e.outcome == "denied":
            out.append(
                Alert(
                    e.index,
                    e.timestamp,
                    "access denied",
                    e.action,
                    e.actor,
                    e.outcome,
                    f"{e.action} on {e.target}" + (f": {_summary(details)}" if details else ""),
                )
            )
    out.sort(key=lambda a: a.index, reverse=True)
    return out


def _find_report(digest: str, directories: Sequence[Path]) -> dict[str, Any] | None:
    """The ``report.json`` under ``directories`` whose SHA-256 is ``digest`` (read once, parsed from the
    bytes that were hashed)."""
    for directory in directories:
        for path in sorted(directory.rglob("report.json"))[:500]:
            try:
                if path.stat().st_size > REPORT_MAX_BYTES:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                try:
                    parsed = json.loads(data)
                except ValueError:
                    return None
                return parsed if isinstance(parsed, dict) else None
    return None


def _families(value: Any) -> dict[str, dict[str, Any]]:
    """An audit note's families, keeping only well-formed ones (a note is data another identity wrote)."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(value, Mapping):
        return out
    for name, fam in value.items():
        if not isinstance(fam, Mapping):
            continue
        metrics = fam.get("metrics")
        out[str(name)] = {
            "status": str(fam.get("status") or "-"),
            "grade": str(fam["grade"]) if isinstance(fam.get("grade"), str | int | float) else None,
            "metrics": {
                str(k): v
                for k, v in metrics.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if isinstance(metrics, Mapping)
            else {},
        }
    return out


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) and value != "" else None


def audit_views(vault: Any, *, reports: Sequence[Path] = ()) -> list[AuditView]:
    """Every model version's newest *attested* audit (an ``audit`` annotation the audit runner attested with
    this home's key ring, as the inventory shows it: :func:`bastion.governance.evidence.audit_attested`), with
    the curves of the matching ``report.json`` when one is found under ``reports`` (matched by the recorded
    SHA-256). Notes anyone with ``audit:run`` wrote without the key ring are counted, not shown."""
    from bastion.governance.evidence import audit_attested

    out: list[AuditView] = []
    for v in vault.list("model"):
        try:
            notes = vault.annotations(v.ref, namespace="audit")
        except IntegrityError:
            continue  # the inventory shows the failed signature
        attested = [
            n.data for n in notes if isinstance(n.data, Mapping) and audit_attested(vault, v.ref, n.data)
        ]
        ignored = len(notes) - len(attested)
        if not attested:
            if ignored:
                out.append(AuditView(v.ref, None, None, None, (), {}, None, unattested=ignored))
            continue
        note = attested[-1]
        digest = note.get("report_sha256") if isinstance(note.get("report_sha256"), str) else None
        curves: dict[str, Mapping[str, Any]] = {}
        found = False
        if digest is not None and reports:
            report = _find_report(digest, reports)
            if report is not None:
                found = True
                for family, sec in (report.get("sections") or {}).items():
                    if isinstance(sec, Mapping) and isinstance(sec.get("curves"), Mapping):
                        curves[str(family)] = sec["curves"]
        reasons = note.get("reasons")
        out.append(
            AuditView(
                ref=v.ref,
                grade=_text(note.get("grade")),
                created=_text(note.get("created")),
                budget=_text(note.get("budget")),
                reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
                families=_families(note.get("families")),
                report_sha256=digest,
                curves=curves,
                report_found=found,
                unattested=ignored,
            )
        )
    return out


def audit_series(family: str, curves: Mapping[str, Any]) -> list[tuple[str, dict[str, list], str, str, bool]]:
    """(title, series, xlabel, ylabel, logx) for each plot an audit family's curves hold."""
    out: list[tuple[str, dict[str, list], str, str, bool]] = []
    if family == "evasion" and curves.get("accuracy_vs_eps"):
        pts = [(p[0], p[1]) for p in curves["accuracy_vs_eps"]]
        out.append(("Accuracy vs ε (L∞)", {"robust accuracy": pts}, "ε", "accuracy", False))
    if family == "membership" and isinstance(curves.get("roc"), Mapping):
        series = {
            name: list(zip(roc.get("fpr", []), roc.get("tpr", []), strict=False))
            for name, roc in curves["roc"].items()
            if isinstance(roc, Mapping)
        }
        out.append(("ROC", series, "false positive rate", "true positive rate", True))
    if family == "extraction" and isinstance(curves.get("fidelity_vs_queries"), Mapping):
        series = {k: [(p[0], p[1]) for p in v] for k, v in curves["fidelity_vs_queries"].items()}
        out.append(("Fidelity vs queries", series, "victim queries", "label agreement", True))
    return out


def drift_views(vault: Any, entries: Sequence[Any]) -> list[DriftView]:
    """The drift state each served model's gateway last wrote, with the drift-alert history from the log."""
    from bastion.serve.drift import read_state

    history: dict[str, list[tuple[str, float]]] = {}
    for e in entries:
        if e.action == "serve:drift-alert":
            d = e.details or {}
            psi = d.get("max_feature_psi")
            if isinstance(psi, int | float):
                history.setdefault(str(d.get("model")), []).append((e.timestamp, float(psi)))
    out: list[DriftView] = []
    for name in sorted({str(v.name) for v in vault.list("model")}):
        state = read_state(vault.settings.home, name)
        if not state:
            continue
        figures = {
            k: float(state[k])
            for k in ("max_feature_psi", "prediction_psi", "confidence_drop")
            if isinstance(state.get(k), int | float)
        }
        raw = state.get("thresholds")
        thresholds: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        out.append(
            DriftView(
                model=name,
                version=str(state.get("version", "")),
                state=str(state.get("state", "unknown")),
                samples=int(state["samples"]) if isinstance(state.get("samples"), int) else None,
                figures=figures,
                thresholds={k: float(v) for k, v in thresholds.items() if isinstance(v, int | float)},
                alerts=tuple(str(a) for a in state.get("alerts") or ()),
                updated_at=str(state["updated_at"]) if state.get("updated_at") else None,
                history=tuple(history.get(name, ())),
            )
        )
    return out


def lineage_graph(vault: Any, ref: str) -> Any:
    """The OpenLineage graph of a registry artifact (``registry:read``), or None when none is recorded."""
    from bastion.errors import NotFound
    from bastion.vault.lineage import lineage

    try:
        return lineage(vault=vault, ref=ref)
    except NotFound:
        return None


__all__ = [
    "ALERT_ACTIONS",
    "Alert",
    "AuditView",
    "DriftView",
    "LogState",
    "alerts",
    "audit_series",
    "audit_views",
    "drift_views",
    "lineage_graph",
    "log_state",
    "recent_entries",
]

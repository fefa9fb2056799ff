"""Threat hunting over the event store: a Sigma rule pack mapped to MITRE ATLAS plus an anomaly score.

::

    from bastion.events import EventStore
    from bastion.hunt import hunt
    report = hunt(store=EventStore.for_home(home), since=time.time() - 86400)
    for f in report.findings:
        print(f.rule_id, f.techniques, f.identity, f.client, f.first_seen, f.event_ids[:5], f.features)

Rules: :mod:`bastion.hunt.sigma` (pySigma's SQLite backend for detections; windowed correlations in SQL we
generate, because the backend ignores ``timespan``); the packaged pack is ``bastion/hunt/rules/*.yml``.
Per-identity baselines (pulls outside the identity's usual hours; rules with a benign twin lowered for the
identities that have that history): :mod:`bastion.hunt.baseline`. Hourly and daily sums (per identity, per
address prefix) against slow or spread-out attacks: :mod:`bastion.hunt.cumulative`. Anomalies:
:mod:`bastion.hunt.anomaly`
(Isolation Forest per identity/client hour, with the features that drove each score). Attack campaigns for
measuring both: :mod:`bastion.hunt.simulate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion.events.store import EventStore
from bastion.hunt.report import SEVERITIES, Finding, HuntReport
from bastion.hunt.sigma import CompiledRule, load_rules, run_rule


def hunt(
    *,
    store: EventStore,
    since: float | None = None,
    rules: str | Path | Sequence[CompiledRule] | None = None,
    anomaly: bool = True,
    baseline: bool = True,
    cumulative: bool = True,
    seed: int = 0,
    verify: Callable[[Sequence[int]], bool] | None = None,
) -> HuntReport:
    """Run every rule (the packaged pack, a directory of ``*.yml``, or compiled rules) and the anomaly model.

    ``since`` (unix seconds) limits the events looked at. Findings are ordered by first event time.
    ``cumulative`` adds the hourly and daily thresholds of :mod:`bastion.hunt.cumulative` (what an attacker
    who stays under the short-window rules gets, by going slowly or spreading over addresses).
    ``baseline`` adds the per-identity checks of :mod:`bastion.hunt.baseline` (pulls outside the identity's
    usual hours; the twin rules' findings lowered for identities with that history); ``verify(event_ids)``,
    when given, must accept the events of that history before a finding is lowered (see
    :func:`verifier_for`: the events re-derived from the signed audit log).
    """
    from bastion.governance.threat import atlas_techniques
    from bastion.hunt.anomaly import HISTORY_S, score_windows
    from bastion.hunt.baseline import apply_history, offhours_pulls
    from bastion.hunt.cumulative import cumulative_findings

    start = time.perf_counter()
    compiled = (
        list(rules) if isinstance(rules, Sequence) and not isinstance(rules, str) else load_rules(rules)
    )
    names = dict(atlas_techniques())
    findings: list[Finding] = []
    for rule in compiled:
        findings.extend(run_rule(rule, store, since=since, names=names))
    if cumulative:
        findings.extend(cumulative_findings(store, since=since))
    if baseline:
        findings = apply_history(findings, store, verify=verify)
        findings.extend(offhours_pulls(store, since=since))
    if anomaly:
        findings.extend(score_windows(store, since=since, seed=seed, history_s=HISTORY_S))
    findings.sort(key=lambda f: (f.first_seen, f.rule_id, f.key))
    return HuntReport(
        findings=tuple(findings),
        events=store.count(),
        rules=tuple(r.rule_id for r in compiled),
        since=since,
        elapsed_s=time.perf_counter() - start,
        anomaly=anomaly,
    )


def verifier_for(log: Any, store: EventStore) -> Callable[[Sequence[int]], bool]:
    """``verify`` for :func:`hunt`: events accepted when they re-derive from ``log``'s verified entries."""
    from bastion.events.verify import EvidenceVerifier

    checker = EvidenceVerifier(log=log, store=store)
    return lambda ids: checker.check(ids) is None


__all__ = ["SEVERITIES", "CompiledRule", "Finding", "HuntReport", "hunt", "load_rules", "verifier_for"]

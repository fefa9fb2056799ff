"""Audit policies: metric thresholds that turn an audit into a CI gate.

A policy is a TOML file with one table per attack family, each key a metric of that family's section with a
``min`` and/or ``max`` bound, plus an optional ``[overall]`` table with ``grade = { min = "C" }``::

    [evasion]
    robust_accuracy = { min = 0.30 }
    [membership]
    auc = { max = 0.60 }
    [overall]
    grade = { min = "C" }

Fail closed: an empty policy, an unknown family, a bound that is not a number, or a metric the audit did not
measure (family skipped or not run) is an error or a violation, never silently ignored.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.adversarial.audit import FAMILIES, GRADES, AuditReport
from bastion.errors import ConfigError, NotFound

MAX_POLICY_BYTES = 1 << 20


@dataclass(frozen=True)
class Threshold:
    family: str
    metric: str
    min: float | str | None = None
    max: float | str | None = None


@dataclass(frozen=True)
class Policy:
    source: str
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class Violation:
    family: str
    metric: str
    value: Any
    bound: str

    def __str__(self) -> str:
        shown = "not measured" if self.value is None else self.value
        if isinstance(shown, float):
            shown = f"{shown:.4g}"
        return f"{self.family}.{self.metric} = {shown} (policy: {self.bound})"


def parse_policy(data: Mapping[str, Any], *, source: str = "policy") -> Policy:
    """Validate a policy mapping (as read from TOML)."""
    if not data:
        raise ConfigError(f"{source}: empty policy (fail closed: state at least one threshold)")
    out = []
    for family, table in data.items():
        if family not in (*FAMILIES, "overall"):
            raise ConfigError(f"{source}: unknown section [{family}] (use {', '.join(FAMILIES)} or overall)")
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"{source}: [{family}] must be a non-empty table of metric bounds")
        for metric, bound in table.items():
            if not isinstance(bound, Mapping) or not bound or set(bound) - {"min", "max"}:
                raise ConfigError(f"{source}: {family}.{metric} must be a table with min and/or max")
            lo, hi = bound.get("min"), bound.get("max")
            if family == "overall":
                if metric != "grade" or hi is not None or lo not in GRADES:
                    raise ConfigError(f'{source}: [overall] supports only grade = {{ min = "A".."F" }}')
            else:
                for v in (lo, hi):
                    if v is not None and (
                        isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                    ):
                        raise ConfigError(f"{source}: {family}.{metric} bounds must be finite numbers")
            out.append(Threshold(family=family, metric=str(metric), min=lo, max=hi))
    return Policy(source=source, thresholds=tuple(out))


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such policy file: {p}")
    if p.stat().st_size > MAX_POLICY_BYTES:
        raise ConfigError(f"{p}: policy file too large")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
    return parse_policy(data, source=str(p))


def check_policy(report: AuditReport, policy: Policy) -> tuple[Violation, ...]:
    """Every threshold the report breaks (a metric that was not measured breaks its threshold)."""
    violations = []
    for th in policy.thresholds:
        if th.family == "overall":
            assert isinstance(th.min, str)
            # an incomplete audit has no letter grade: it fails every grade bound (fail closed)
            if report.grade not in GRADES or GRADES.index(report.grade) > GRADES.index(th.min):
                violations.append(Violation("overall", "grade", report.grade, f"min {th.min}"))
            continue
        value = report.metric(th.family, th.metric)
        bound = " and ".join(f"{k} {v}" for k, v in (("min", th.min), ("max", th.max)) if v is not None)
        if not isinstance(value, int | float) or isinstance(value, bool):
            violations.append(Violation(th.family, th.metric, None, bound))
            continue
        if (th.min is not None and value < float(th.min)) or (th.max is not None and value > float(th.max)):
            violations.append(Violation(th.family, th.metric, value, bound))
    return tuple(violations)


__all__ = ["Policy", "Threshold", "Violation", "check_policy", "load_policy", "parse_policy"]

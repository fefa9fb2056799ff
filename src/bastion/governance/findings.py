"""Findings of the governance checks and their SARIF 2.1.0 rendering.

Every check (policy rules on registry versions, code review, deployment checks) returns :class:`Issue`
records; :class:`CheckReport` gathers them and renders text, JSON or one SARIF log with one run per tool
(``bastion`` for our rules, ``bandit`` for bandit's), validated against the OASIS schema in tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = ("error", "warning", "note")


@dataclass(frozen=True)
class Rule:
    """A rule any check can report: a stable id, a short name and a one-line description."""

    id: str
    name: str
    description: str
    level: str = "error"
    tool: str = "bastion"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "level": self.level}


@dataclass(frozen=True)
class Issue:
    """One violation: which rule, where (a registry ref or a file and line) and why."""

    rule: Rule
    message: str
    target: str
    line: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return not self.target.startswith("registry:")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "tool": self.rule.tool,
            "level": self.rule.level,
            "message": self.message,
            "target": self.target,
            "line": self.line,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class CheckReport:
    """Everything one ``bastion check`` found; ``ok`` when no error-level issue remains."""

    issues: tuple[Issue, ...]
    checked: tuple[str, ...]
    rules: tuple[Rule, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(i.rule.level == "error" for i in self.issues)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": list(self.checked),
            "issues": [i.to_dict() for i in self.issues],
            "counts": {lvl: sum(1 for i in self.issues if i.rule.level == lvl) for lvl in LEVELS},
        }

    def text(self) -> str:
        lines = []
        for i in self.issues:
            where = f"{i.target}:{i.line}" if i.line else i.target
            lines.append(f"{i.rule.level.upper():7} {i.rule.id} {where}: {i.message}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {len(self.checked)} target(s) checked, {len(self.issues)} issue(s)")
        return "\n".join(lines)

    def to_sarif(self) -> dict[str, Any]:
        return to_sarif(self.issues, rules=self.rules)


def merge(reports: Iterable[CheckReport]) -> CheckReport:
    issues: list[Issue] = []
    checked: list[str] = []
    rules: dict[str, Rule] = {}
    for r in reports:
        issues.extend(r.issues)
        checked.extend(r.checked)
        rules.update({x.id: x for x in r.rules})
    return CheckReport(issues=tuple(issues), checked=tuple(checked), rules=tuple(rules.values()))


def _location(issue: Issue) -> dict[str, Any]:
    if issue.is_file:
        phys: dict[str, Any] = {"artifactLocation": {"uri": issue.target.replace("\\", "/")}}
        if issue.line:
            phys["region"] = {"startLine": issue.line}
        return {"physicalLocation": phys}
    return {"logicalLocations": [{"fullyQualifiedName": issue.target, "kind": "module"}]}


def to_sarif(issues: Sequence[Issue], *, rules: Sequence[Rule] = ()) -> dict[str, Any]:
    """One SARIF 2.1.0 log; one run per tool that has rules or results (bastion always has a run)."""
    by_tool: dict[str, dict[str, Rule]] = {"bastion": {}}
    for r in rules:
        by_tool.setdefault(r.tool, {})[r.id] = r
    for i in issues:
        by_tool.setdefault(i.rule.tool, {})[i.rule.id] = i.rule
    runs = []
    for tool, tool_rules in by_tool.items():
        ordered = sorted(tool_rules.values(), key=lambda r: r.id)
        index = {r.id: n for n, r in enumerate(ordered)}
        driver: dict[str, Any] = {
            "name": tool,
            "rules": [
                {
                    "id": r.id,
                    "name": r.name,
                    "shortDescription": {"text": r.description},
                    "defaultConfiguration": {"level": r.level},
                }
                for r in ordered
            ],
        }
        if tool == "bastion":
            driver["version"] = __version__
            driver["informationUri"] = "https://github.com/bastion-ml/bastion"
        results = [
            {
                "ruleId": i.rule.id,
                "ruleIndex": index[i.rule.id],
                "level": i.rule.level,
                "message": {"text": i.message},
                "locations": [_location(i)],
            }
            for i in issues
            if i.rule.tool == tool
        ]
        runs.append({"tool": {"driver": driver}, "results": results})
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}


__all__ = ["LEVELS", "CheckReport", "Issue", "Rule", "merge", "to_sarif"]

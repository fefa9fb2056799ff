"""Response playbooks (TOML): which findings lead to which actions, in which mode.

::

    [[rule]]
    name = "token spray"
    match = ["0b7f3a10-5d1e-4c8a-9f00-000000000302"]   # rule ids; "*" matches every finding
    min_severity = "high"                               # optional
    actions = ["block-client"]
    mode = "auto"                                       # optional: auto | approve | dry-run
    env = "prod"                                        # rotate-key only

Unknown keys, actions and modes are refused (a typo must not silently disable a response); an empty
playbook is refused too. The packaged default is ``bastion/respond/default.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bastion.config import ENVIRONMENTS
from bastion.errors import InvalidInput
from bastion.hunt.report import SEVERITIES, Finding

ACTIONS: tuple[str, ...] = (
    "revoke-tokens",
    "disable-identity",
    "block-identity",
    "block-client",
    "throttle-client",
    "quarantine-model",
    "rotate-key",
    "guard-block-mode",
)
MODES: tuple[str, ...] = ("dry-run", "approve", "auto")
_KEYS = frozenset({"name", "match", "min_severity", "actions", "mode", "env"})


@dataclass(frozen=True)
class PlaybookRule:
    name: str
    match: tuple[str, ...]
    actions: tuple[str, ...]
    min_severity: str = "informational"
    mode: str | None = None
    env: str = "prod"

    def matches(self, finding: Finding) -> bool:
        if SEVERITIES.index(_severity(finding.severity)) < SEVERITIES.index(self.min_severity):
            return False
        return "*" in self.match or finding.rule_id in self.match


def _severity(value: str) -> str:
    return value if value in SEVERITIES else "medium"


@dataclass(frozen=True)
class Playbook:
    rules: tuple[PlaybookRule, ...]
    source: str

    def rules_for(self, finding: Finding) -> list[PlaybookRule]:
        return [r for r in self.rules if r.matches(finding)]


def _rule(obj: object, where: str) -> PlaybookRule:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{where}: each [[rule]] must be a table")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}")
    match, actions = obj.get("match"), obj.get("actions")
    if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
        raise InvalidInput(f"{where}: match must be a non-empty list of rule ids")
    if not isinstance(actions, list) or not actions or not all(a in ACTIONS for a in actions):
        raise InvalidInput(f"{where}: actions must be a non-empty list of {', '.join(ACTIONS)}")
    mode = obj.get("mode")
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"{where}: mode must be one of {', '.join(MODES)}")
    severity = obj.get("min_severity", "informational")
    if severity not in SEVERITIES:
        raise InvalidInput(f"{where}: min_severity must be one of {', '.join(SEVERITIES)}")
    env = obj.get("env", "prod")
    if env not in ENVIRONMENTS:
        raise InvalidInput(f"{where}: env must be one of {', '.join(ENVIRONMENTS)}")
    return PlaybookRule(str(obj.get("name", "")), tuple(match), tuple(actions), severity, mode, env)


def parse_playbook(text: str, *, source: str = "<playbook>") -> Playbook:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source}: not valid TOML ({exc})") from exc
    unknown = sorted(set(doc) - {"rule"})
    if unknown:
        raise InvalidInput(f"{source}: unknown table(s) {', '.join(unknown)}")
    rules = doc.get("rule")
    if not isinstance(rules, list) or not rules:
        raise InvalidInput(f"{source}: a playbook needs at least one [[rule]]")
    return Playbook(tuple(_rule(r, f"{source} rule {i + 1}") for i, r in enumerate(rules)), source)


def load_playbook(path: str | Path | None = None) -> Playbook:
    """A playbook file, or the packaged default when ``path`` is None."""
    if path is None:
        text = resources.files("bastion.respond").joinpath("default.toml").read_text(encoding="utf-8")
        return parse_playbook(text, source="default.toml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read playbook {path} ({exc.strerror})") from exc
    return parse_playbook(text, source=str(path))


__all__ = ["ACTIONS", "MODES", "Playbook", "PlaybookRule", "load_playbook", "parse_playbook"]

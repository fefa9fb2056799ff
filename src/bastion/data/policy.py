"""Protection policy: which control each label (or named column) gets.

Defaults: ``pii`` -> tokenize, ``secret`` -> drop, quasi-identifiers -> generalize, everything else kept.
A policy TOML overrides them; unknown tables, keys, labels or actions raise
:class:`~bastion.errors.InvalidInput` (nothing is silently ignored)::

    [defaults]                 # label -> action
    pii = "tokenize"
    secret = "drop"
    quasi_identifier = "generalize"

    [options]
    token_scope = "customers"  # data key scope: same scope, same tokens
    date_granularity = "month" # or "year"
    zip_digits = 3
    age_band = 10
    mask_keep_last = 4
    mac_address = "pii"        # or "internal" (see Policy.mac_address)

    [columns.card_number]
    action = "fpe"             # keep, tokenize, fpe, mask, redact, hash, generalize, drop
    [columns.city]
    label = "public"
    quasi_identifier = false
    [columns.notes]
    prose = true               # span replacement only; cells with nothing detected are kept
    [columns.ship_label]
    whole = true               # every non-empty cell protected whole, never span by span
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bastion.data.entities import Action, Label
from bastion.errors import InvalidInput

DEFAULT_ACTIONS: Mapping[str, Action] = MappingProxyType(
    {
        Label.public.value: Action.keep,
        Label.internal.value: Action.keep,
        Label.confidential.value: Action.keep,
        Label.pii.value: Action.tokenize,
        Label.secret.value: Action.drop,
        "quasi_identifier": Action.generalize,
    }
)
_TOP = frozenset({"defaults", "options", "columns"})
_OPTIONS = frozenset(
    {"token_scope", "date_granularity", "zip_digits", "age_band", "mask_keep_last", "mac_address"}
)
_COLUMN_KEYS = frozenset({"action", "label", "quasi_identifier", "entity", "prose", "whole"})


@dataclass(frozen=True)
class ColumnRule:
    action: Action | None = None
    label: Label | None = None
    quasi_identifier: bool | None = None
    entity: str | None = None
    # True: the column is prose, protected span by span; cells with no detection are kept. Otherwise a
    # free-text pii column fails closed: cells with no detection get the column's action whole.
    prose: bool = False
    # True: every non-empty cell gets the column's action whole, whatever it looks like (free text too).
    whole: bool = False


@dataclass(frozen=True)
class Policy:
    """Validated protection policy (see the module docstring for the TOML form)."""

    defaults: Mapping[str, Action] = field(default_factory=lambda: DEFAULT_ACTIONS)
    columns: Mapping[str, ColumnRule] = field(default_factory=lambda: MappingProxyType({}))
    token_scope: str = "default"  # noqa: S105 - a scope name
    date_granularity: str = "month"
    zip_digits: int = 3
    age_band: int = 10
    mask_keep_last: int = 4
    # MAC addresses: "pii" (default) or "internal". Default pii, failing closed: a MAC of a phone or a
    # laptop is a persistent device identifier that follows one person (an "online identifier" in GDPR
    # Recital 30); an inventory of switches and servers can say "internal" to keep them.
    mac_address: str = "pii"

    def action_for(self, *, column: str, label: Label, quasi_identifier: bool) -> Action:
        rule = self.columns.get(column)
        if rule is not None and rule.action is not None:
            return rule.action
        if quasi_identifier and label not in (Label.pii, Label.secret):
            return self.defaults["quasi_identifier"]
        return self.defaults[label.value]


def _enum(kind: type[Action] | type[Label], value: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        allowed = ", ".join(v.value for v in kind)
        raise InvalidInput(f"policy {where}: {value!r} is not one of {allowed}") from exc


def _unknown(keys: Any, allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise InvalidInput(f"policy {where}: unknown key(s) {', '.join(extra)}")


def policy_from_mapping(data: Mapping[str, Any], *, token_scope: str | None = None) -> Policy:
    """Validate a parsed policy document."""
    _unknown(data, _TOP, "file")
    defaults = dict(DEFAULT_ACTIONS)
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, Mapping):
        raise InvalidInput("policy [defaults] must be a table")
    _unknown(raw_defaults, frozenset(DEFAULT_ACTIONS), "[defaults]")
    for key, value in raw_defaults.items():
        defaults[key] = _enum(Action, value, f"[defaults].{key}")
    options = data.get("options", {})
    if not isinstance(options, Mapping):
        raise InvalidInput("policy [options] must be a table")
    _unknown(options, _OPTIONS, "[options]")
    columns: dict[str, ColumnRule] = {}
    raw_columns = data.get("columns", {})
    if not isinstance(raw_columns, Mapping):
        raise InvalidInput("policy [columns] must be a table of tables")
    for name, rule in raw_columns.items():
        if not isinstance(rule, Mapping):
            raise InvalidInput(f"policy [columns.{name}] must be a table")
        _unknown(rule, _COLUMN_KEYS, f"[columns.{name}]")
        qi = rule.get("quasi_identifier")
        if qi is not None and not isinstance(qi, bool):
            raise InvalidInput(f"policy [columns.{name}].quasi_identifier must be true or false")
        prose = rule.get("prose", False)
        if not isinstance(prose, bool):
            raise InvalidInput(f"policy [columns.{name}].prose must be true or false")
        whole = rule.get("whole", False)
        if not isinstance(whole, bool):
            raise InvalidInput(f"policy [columns.{name}].whole must be true or false")
        if whole and prose:
            raise InvalidInput(f"policy [columns.{name}]: prose and whole exclude each other")
        columns[str(name)] = ColumnRule(
            action=_enum(Action, rule["action"], f"[columns.{name}].action") if "action" in rule else None,
            label=_enum(Label, rule["label"], f"[columns.{name}].label") if "label" in rule else None,
            quasi_identifier=qi,
            entity=str(rule["entity"]) if "entity" in rule else None,
            prose=prose,
            whole=whole,
        )
    granularity = options.get("date_granularity", "month")
    if granularity not in ("month", "year"):
        raise InvalidInput("policy [options].date_granularity must be 'month' or 'year'")
    ints = {}
    for key, default, low, high in (
        ("zip_digits", 3, 0, 4),
        ("age_band", 10, 2, 50),
        ("mask_keep_last", 4, 0, 4),
    ):
        value = options.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(f"policy [options].{key} must be an integer in {low}..{high}")
        ints[key] = value
    mac = options.get("mac_address", "pii")
    if mac not in ("pii", "internal"):
        raise InvalidInput("policy [options].mac_address must be 'pii' or 'internal'")
    scope = str(options.get("token_scope", token_scope or "default"))
    if not scope or len(scope) > 100:
        raise InvalidInput("policy [options].token_scope must be 1..100 characters")
    return Policy(
        defaults=MappingProxyType(defaults),
        columns=MappingProxyType(columns),
        token_scope=scope,
        date_granularity=granularity,
        mac_address=mac,
        **ints,
    )


def load_policy(path: str | Path | None = None, *, token_scope: str | None = None) -> Policy:
    """The default policy, or the one in ``path`` (validated)."""
    if path is None:
        return policy_from_mapping({}, token_scope=token_scope)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"no such policy file: {path}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"policy {path} is not valid TOML") from exc
    return policy_from_mapping(data, token_scope=token_scope)


__all__ = ["DEFAULT_ACTIONS", "ColumnRule", "Policy", "load_policy", "policy_from_mapping"]

"""Checks on what an identity may be given: its name, role, model globs and environments."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from bastion.access.roles import EXPLICIT_MODEL_ROLES, ROLE_ENVS, ROLES
from bastion.config import ENVIRONMENTS
from bastion.errors import Conflict, InvalidInput

_IDENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}", re.ASCII)
_MODEL_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]!-]{1,200}", re.ASCII)


def check_identity_name(name: str) -> str:
    """ASCII letters, digits and ``. _ @ + -``, starting with a letter or digit (the whole string)."""
    if not isinstance(name, str) or not _IDENTITY_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid identity name {name!r}: ASCII letters, digits, '.', '_', '@', '+' and '-', "
            "starting with a letter or digit"
        )
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r} (one of {', '.join(ROLES)})")


def _same_scope(name: str, what: str, asked: Sequence[str], held: tuple[str, ...]) -> None:
    asked_set = set(asked)
    if not asked_set or asked_set == set(held):
        return
    if asked_set <= set(held):
        raise Conflict(
            f"a token carries its identity's whole scope ({what}: {', '.join(held)}): "
            f"for a narrower token create another identity"
        )
    raise Conflict(
        f"token create does not change {name!r}'s grants ({what}: {', '.join(held)}): "
        f"run 'bastion access grant {name}' first"
    )


def _scopes(role: str, models: Iterable[str], envs: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    models = tuple(dict.fromkeys(models))
    envs = tuple(dict.fromkeys(envs))
    for m in models:
        if not isinstance(m, str) or not _MODEL_GLOB.fullmatch(m):
            raise InvalidInput(
                f"invalid model scope {m!r}: a glob of 1-200 ASCII letters, digits, '.', '_', '-', '*', '?', "
                "'[', ']' or '!'"
            )
    for e in envs:
        if e not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {e!r} (one of {', '.join(ENVIRONMENTS)})")
        if e not in ROLE_ENVS[role]:
            raise InvalidInput(f"role {role} cannot be granted environment {e}")
    if not models:
        if role in EXPLICIT_MODEL_ROLES:
            raise InvalidInput(f"role {role} needs at least one --model")
        models = ("*",)
    return models, envs or ROLE_ENVS[role]

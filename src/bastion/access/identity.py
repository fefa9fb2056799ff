"""Who acts: :class:`Identity` (a role plus granted model globs and environments), the pure permission
decision :func:`allowed`, and the records that token and revocation calls return."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from bastion.access.roles import PERMISSIONS, ROLE_ENVS, ROLE_PERMISSIONS, ROLES
from bastion.config import ENVIRONMENTS

OWNER_ID = "owner"
OWNER_NAME = "owner"


@dataclass(frozen=True)
class Identity:
    """Who is acting: a role plus the model globs and environments granted to it."""

    id: str
    name: str
    role: str
    models: tuple[str, ...] = ("*",)
    envs: tuple[str, ...] = ENVIRONMENTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "models": list(self.models),
            "envs": list(self.envs),
        }


@dataclass(frozen=True)
class Revocation:
    """What ``access revoke`` removed, and which of the given scopes the identity did not hold."""

    identity: Identity | None
    removed_models: tuple[str, ...] = ()
    removed_envs: tuple[str, ...] = ()
    not_held_models: tuple[str, ...] = ()
    not_held_envs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": None if self.identity is None else self.identity.to_dict(),
            "removed": {"models": list(self.removed_models), "envs": list(self.removed_envs)},
            "not_held": {"models": list(self.not_held_models), "envs": list(self.not_held_envs)},
        }


@dataclass(frozen=True)
class TokenInfo:
    id: str
    identity: str
    role: str
    created_at: str
    revoked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identity": self.identity,
            "role": self.role,
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


def allowed(identity: Identity, permission: str, *, model: str | None = None, env: str | None = None) -> bool:
    """The pure decision, without logging: role grants it, env and model are within scope."""
    if permission not in PERMISSIONS or identity.role not in ROLES:
        return False
    if permission not in ROLE_PERMISSIONS[identity.role]:
        return False
    if env is not None and (env not in ROLE_ENVS[identity.role] or env not in identity.envs):
        return False
    return model is None or any(fnmatch.fnmatchcase(model, glob) for glob in identity.models)


__all__ = ["OWNER_ID", "OWNER_NAME", "Identity", "Revocation", "TokenInfo", "allowed"]

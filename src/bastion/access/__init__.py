"""Access control (layer 3): identities, API tokens, roles scoped per model and environment.

Deny by default: :meth:`AccessControl.check` allows an action only when the role × permission table
(:mod:`bastion.access.roles`) grants it within the identity's model globs and environments, and audit-logs
every denial.
"""

from __future__ import annotations

from bastion.access.control import (
    OWNER_ID,
    TOKEN_PREFIX,
    AccessControl,
    Identity,
    Revocation,
    TokenInfo,
    allowed,
    token_id,
)
from bastion.access.roles import PERMISSIONS, ROLE_ENVS, ROLE_PERMISSIONS, ROLES, role_table_markdown

__all__ = [
    "OWNER_ID",
    "PERMISSIONS",
    "ROLES",
    "ROLE_ENVS",
    "ROLE_PERMISSIONS",
    "TOKEN_PREFIX",
    "AccessControl",
    "Identity",
    "Revocation",
    "TokenInfo",
    "allowed",
    "role_table_markdown",
    "token_id",
]

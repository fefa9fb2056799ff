"""The role × permission table: the one place that says who may do what (deny by default).

A permission is granted only when the identity's role lists it here, the environment (if the action has
one) is in both the role's environments and the identity's granted environments, and the artifact name (if
the action has one) matches one of the identity's granted model globs.
"""

from __future__ import annotations

from types import MappingProxyType

from bastion.config import ENVIRONMENTS

PERMISSIONS: tuple[str, ...] = (
    "registry:push",
    "registry:pull",
    "registry:read",
    "registry:promote",
    "access:manage",
    "keys:rotate",
    "log:read",
    "data:scan",
    "data:protect",
    "data:reveal",
    "privacy:train",
    "audit:run",
    "model:infer",
    "model:metadata",
    "serve:admin",
    "watermark:embed",
)

ROLES: tuple[str, ...] = (
    "admin",
    "data-scientist",
    "ml-engineer",
    "deployer",
    "auditor",
    "consumer",
    "gateway",
)

_BUILD = frozenset(
    {
        "registry:push",
        "registry:pull",
        "registry:read",
        "registry:promote",
        "data:scan",
        "data:protect",
        "privacy:train",
        "audit:run",
        "watermark:embed",
        "model:infer",
        "model:metadata",
    }
)

ROLE_PERMISSIONS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "admin": frozenset(PERMISSIONS),
        # builds models and data sets; never in prod (see ROLE_ENVS)
        "data-scientist": _BUILD,
        # builds and ships: may promote to staging and prod
        "ml-engineer": _BUILD,
        # runs what is in prod: reads it, nothing else
        "deployer": frozenset({"registry:read", "registry:pull", "model:infer", "model:metadata"}),
        # reads the registry's metadata and the log, runs audits; never sees plaintext artifacts
        "auditor": frozenset({"registry:read", "log:read", "audit:run", "data:scan", "model:metadata"}),
        # the gateway's callers: inference and metadata on the models granted to them
        "consumer": frozenset({"model:infer", "model:metadata"}),
        # a gateway's workload credential: pulls (the server releases the DEK of) only the models granted
        # to it, in staging or prod; it cannot list, read metadata, push, infer or see the log
        "gateway": frozenset({"registry:pull"}),
    }
)

ROLE_ENVS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "admin": ENVIRONMENTS,
        "data-scientist": ("dev", "staging"),
        "ml-engineer": ENVIRONMENTS,
        "deployer": ("prod",),
        "auditor": ENVIRONMENTS,
        "consumer": ENVIRONMENTS,
        "gateway": ("staging", "prod"),
    }
)

# Roles whose model scope must be granted explicitly (no default "*").
EXPLICIT_MODEL_ROLES = frozenset({"consumer", "gateway"})


def role_table_markdown() -> str:
    """The table as Markdown (the README's copy is generated from this and checked by a test)."""
    head = "| permission | " + " | ".join(f"`{r}`" for r in ROLES) + " |"
    sep = "|---|" + "---|" * len(ROLES)
    rows = [
        f"| `{p}` | " + " | ".join("✔" if p in ROLE_PERMISSIONS[r] else "" for r in ROLES) + " |"
        for p in PERMISSIONS
    ]
    envs = "| environments | " + " | ".join(", ".join(ROLE_ENVS[r]) for r in ROLES) + " |"
    return "\n".join([head, sep, *rows, envs])


__all__ = [
    "EXPLICIT_MODEL_ROLES",
    "PERMISSIONS",
    "ROLES",
    "ROLE_ENVS",
    "ROLE_PERMISSIONS",
    "role_table_markdown",
]

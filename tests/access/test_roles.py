"""The role × permission table and the deny-by-default check: every forbidden pair is refused and logged."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from bastion.access import PERMISSIONS, ROLE_ENVS, ROLE_PERMISSIONS, ROLES, AccessControl, Identity, allowed
from bastion.access.roles import role_table_markdown
from bastion.config import ENVIRONMENTS
from bastion.errors import AccessDenied

README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN_ONLY = {"access:manage", "keys:rotate", "data:reveal", "serve:admin"}


def ident(role: str, models: tuple[str, ...] = ("*",), envs: tuple[str, ...] | None = None) -> Identity:
    return Identity(id=role, name=f"user-{role}", role=role, models=models, envs=envs or ROLE_ENVS[role])


def test_stated_rules_hold() -> None:
    for perm, env in itertools.product(PERMISSIONS, ENVIRONMENTS):
        # a deployer can only read, and only prod
        if allowed(ident("deployer"), perm, model="m", env=env):
            assert env == "prod" and perm in {
                "registry:read",
                "registry:pull",
                "model:infer",
                "model:metadata",
            }
        # a data-scientist cannot touch prod
        assert not allowed(ident("data-scientist"), perm, model="m", env="prod")
        # only admin manages access and keys
        for role in ROLES:
            if perm in ADMIN_ONLY and role != "admin":
                assert not allowed(ident(role), perm, model="m", env=env)
                assert not allowed(ident(role), perm)
        # the gateway's consumer: inference and metadata on granted models only
        consumer = ident("consumer", models=("fraud-*",))
        assert allowed(consumer, perm, model="fraud-v2", env=env) == (
            perm in {"model:infer", "model:metadata"}
        )
        assert not allowed(consumer, perm, model="churn", env=env)
    assert allowed(ident("admin"), "keys:rotate", env="prod")


def test_unknown_role_or_permission_is_denied() -> None:
    assert not allowed(ident("admin"), "registry:delete")
    assert not allowed(Identity(id="x", name="x", role="root"), "registry:read")


def test_scope_narrows_the_role() -> None:
    eng = ident("ml-engineer", models=("fraud*",), envs=("dev",))
    assert allowed(eng, "registry:push", model="fraud", env="dev")
    assert not allowed(eng, "registry:push", model="fraud", env="staging")
    assert not allowed(eng, "registry:push", model="churn", env="dev")


def test_every_forbidden_pair_is_refused_and_logged(control: AccessControl) -> None:
    checked = denied = 0
    for role, perm, env in itertools.product(ROLES, PERMISSIONS, (None, *ENVIRONMENTS)):
        who = ident(role, models=("m",) if role == "consumer" else ("*",))
        expected = perm in ROLE_PERMISSIONS[role] and (env is None or env in ROLE_ENVS[role])
        before = control.audit.size()
        checked += 1
        if expected:
            control.check(who, perm, model="m", env=env)
            assert control.audit.size() == before
            continue
        denied += 1
        with pytest.raises(AccessDenied):
            control.check(who, perm, model="m", env=env)
        last = control.audit.entries(start=before)
        assert len(last) == 1
        assert (last[0].actor, last[0].action, last[0].outcome) == (who.name, perm, "denied")
    assert denied > checked // 2
    control.audit.verify()


def test_readme_documents_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert role_table_markdown() in text, (
        "regenerate the README table with bastion.access.role_table_markdown()"
    )
    for role in ROLES:
        assert re.search(rf"`{re.escape(role)}`", text)

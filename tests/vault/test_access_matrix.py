"""The role × vault-action matrix, through real tokens: every forbidden pair is refused and audit-logged."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.errors import AccessDenied
from bastion.vault import Vault

ROLES = ("admin", "data-scientist", "ml-engineer", "deployer", "auditor", "consumer")
Y, N = True, False
# action: (admin, data-scientist, ml-engineer, deployer, auditor, consumer)
EXPECTED: dict[str, tuple[bool, ...]] = {
    "push@dev": (Y, Y, Y, N, N, N),
    "push@staging": (Y, Y, Y, N, N, N),
    "push@prod": (Y, N, Y, N, N, N),
    "pull@dev": (Y, Y, Y, N, N, N),
    "pull@staging": (Y, Y, Y, N, N, N),
    "pull@prod": (Y, N, Y, Y, N, N),
    "show@dev": (Y, Y, Y, N, Y, N),
    "show@prod": (Y, N, Y, Y, Y, N),
    "verify@prod": (Y, N, Y, Y, Y, N),
    "list": (Y, Y, Y, Y, Y, N),
    "promote dev->staging": (Y, Y, Y, N, N, N),
    "promote staging->prod": (Y, N, Y, N, N, N),
    "annotate audit@dev": (Y, Y, Y, N, Y, N),
    "annotate privacy@dev": (Y, Y, Y, N, N, N),
    "rotate keys": (Y, N, N, N, N, N),
    "list keys": (Y, N, N, N, N, N),
    "create token": (Y, N, N, N, N, N),
    "grant access": (Y, N, N, N, N, N),
    "verify log": (Y, N, N, N, Y, N),
}


@pytest.fixture
def world(vault: Vault, opener, artifact: Path) -> dict[str, Vault]:
    vault.push(artifact, name="m", env="dev")  # m:1 dev
    vault.push(artifact, name="m", env="staging")  # m:2 staging
    vault.push(artifact, name="m", env="prod")  # m:3 prod
    out = {}
    for role in ROLES:
        _, token = vault.create_token(
            name=f"u-{role}", role=role, models=("m",) if role == "consumer" else ()
        )
        out[role] = opener(token)
    return out


def actions(owner: Vault, v: Vault, artifact: Path, tmp: Path) -> dict[str, Callable[[], object]]:
    def promote(src: str, to: str) -> Callable[[], object]:
        def run() -> object:
            ref = owner.push(artifact, name="m", env=src).ref  # a fresh version in src for this attempt
            return v.promote(ref, to=to)

        return run

    return {
        "push@dev": lambda: v.push(artifact, name="m", env="dev"),
        "push@staging": lambda: v.push(artifact, name="m", env="staging"),
        "push@prod": lambda: v.push(artifact, name="m", env="prod"),
        "pull@dev": lambda: v.pull("m:1", out=tmp / "dev"),
        "pull@staging": lambda: v.pull("m:2", out=tmp / "staging"),
        "pull@prod": lambda: v.pull("m:3", out=tmp / "prod"),
        "show@dev": lambda: v.show("m:1"),
        "show@prod": lambda: v.show("m:3"),
        "verify@prod": lambda: v.verify("m:3"),
        "list": lambda: v.list(),
        "promote dev->staging": promote("dev", "staging"),
        "promote staging->prod": promote("staging", "prod"),
        "annotate audit@dev": lambda: v.annotate("m:1", namespace="audit", data={"ok": 1}),
        "annotate privacy@dev": lambda: v.annotate("m:1", namespace="privacy", data={"epsilon": 1}),
        "rotate keys": lambda: v.rotate_keys(env="dev"),
        "list keys": lambda: v.list_keys(),
        "create token": lambda: v.create_token(name="new", role="auditor"),
        "grant access": lambda: v.access.grant(name="u-auditor", models=("x",)),
        "verify log": lambda: v.log_verify(),
    }


def test_role_action_matrix(vault: Vault, world: dict[str, Vault], artifact: Path, tmp_path: Path) -> None:
    refused = 0
    for (role, i), (action, expected) in itertools.product(
        ((r, k) for k, r in enumerate(ROLES)), EXPECTED.items()
    ):
        v = world[role]
        tmp = tmp_path / role / action.replace(" ", "_").replace(">", "")
        tmp.mkdir(parents=True)
        run = actions(vault, v, artifact, tmp)[action]
        before = vault.audit.size()
        if expected[i]:
            run()
            continue
        with pytest.raises(AccessDenied):
            run()
        refused += 1
        logged = [e for e in vault.audit.entries(start=before) if e.outcome == "denied"]
        assert logged and logged[-1].actor == f"u-{role}", (role, action)
        assert not list(tmp.iterdir()), (role, action)  # nothing written on a refused pull
    assert refused == sum(not x for row in EXPECTED.values() for x in row)
    vault.log_verify()

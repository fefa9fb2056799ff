"""The ``gateway`` role (issue 11 item 6): a workload credential that pulls its granted models, nothing else.

The full role × permission × environment matrix of the new role, and its model scope (never a default "*")."""

from __future__ import annotations

import itertools

import pytest

from bastion.access import PERMISSIONS, ROLE_ENVS, ROLE_PERMISSIONS, Identity, allowed
from bastion.access.control import _scopes
from bastion.config import ENVIRONMENTS
from bastion.errors import InvalidInput


def gateway(models: tuple[str, ...] = ("fraud",), envs: tuple[str, ...] = ("staging", "prod")) -> Identity:
    return Identity(id="gw", name="gw-fraud", role="gateway", models=models, envs=envs)


def test_full_matrix_of_the_gateway_role() -> None:
    assert ROLE_PERMISSIONS["gateway"] == frozenset({"registry:pull"})
    assert ROLE_ENVS["gateway"] == ("staging", "prod")
    granted = []
    for perm, env, model in itertools.product(PERMISSIONS, (None, *ENVIRONMENTS), ("fraud", "churn", None)):
        if allowed(gateway(), perm, model=model, env=env):
            granted.append((perm, env, model))
    assert sorted(granted, key=str) == sorted(
        [
            ("registry:pull", "staging", "fraud"),
            ("registry:pull", "prod", "fraud"),
            ("registry:pull", None, "fraud"),
            ("registry:pull", "staging", None),  # callers always pass the model for a pull (see vault tests)
            ("registry:pull", "prod", None),
            ("registry:pull", None, None),
        ],
        key=str,
    )


def test_a_prod_only_gateway_cannot_pull_staging() -> None:
    gw = gateway(envs=("prod",))
    assert allowed(gw, "registry:pull", model="fraud", env="prod")
    assert not allowed(gw, "registry:pull", model="fraud", env="staging")
    assert not allowed(gw, "registry:pull", model="fraud", env="dev")


def test_gateway_scope_must_name_its_models_and_cannot_reach_dev() -> None:
    with pytest.raises(InvalidInput, match="needs at least one --model"):
        _scopes("gateway", (), ())
    with pytest.raises(InvalidInput, match="cannot be granted environment dev"):
        _scopes("gateway", ("fraud",), ("dev",))
    assert _scopes("gateway", ("fraud",), ()) == (("fraud",), ("staging", "prod"))

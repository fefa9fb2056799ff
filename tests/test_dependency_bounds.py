"""Core and gateway dependencies are bounded to the release lines the suite was run on, so that mypy and the
tests do not depend on what the resolver picks on the day; the installed versions are inside the bounds."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
BOUNDED = [Requirement(r) for r in (*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["serve"])]


@pytest.mark.parametrize("req", BOUNDED, ids=lambda r: r.name)
def test_every_core_and_gateway_dependency_has_an_upper_bound(req: Requirement) -> None:
    ops = {spec.operator for spec in req.specifier}
    assert ops & {"<", "<=", "==", "~="}, f"{req} has no upper bound"


@pytest.mark.parametrize("req", BOUNDED, ids=lambda r: r.name)
def test_the_installed_version_is_inside_the_bounds(req: Requirement) -> None:
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req}"


def test_argon2_cffi_is_not_a_dependency_and_not_imported() -> None:
    """The key derivation uses cryptography's Argon2id; argon2-cffi was declared but never imported."""
    assert not any(Requirement(r).name == "argon2-cffi" for r in PROJECT["dependencies"])
    sources = (ROOT / "src" / "bastion").rglob("*.py")
    assert not [
        p
        for p in sources
        if "import argon2" in (text := p.read_text(encoding="utf-8")) or "from argon2" in text
    ]

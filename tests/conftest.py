"""Shared fixtures.

Services (PostgreSQL, Redis, SoftHSM2) are started by .ci/run, which exports their addresses. Locally a test
that needs one is skipped when the variable is unset; in CI (CI=true) a missing service fails instead, so a
green CI always means the real service was exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_PASSPHRASE = "correct horse battery staple"


def _service(var: str) -> str:
    value = os.environ.get(var)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{var} is not set: .ci/run must start this service")
    pytest.skip(f"{var} not set (the service is started by .ci/run)")


@pytest.fixture
def postgres_url() -> str:
    return _service("BASTION_TEST_POSTGRES_URL")


@pytest.fixture
def redis_url() -> str:
    return _service("BASTION_TEST_REDIS_URL")


@pytest.fixture
def softhsm_module() -> str:
    path = os.environ.get("BASTION_TEST_SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail(f"SoftHSM2 module {path} missing: .ci/run must install softhsm2")
        pytest.skip("SoftHSM2 not installed")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never touch the developer's real project home or token."""
    monkeypatch.delenv("BASTION_TOKEN", raising=False)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "default-home"))
    monkeypatch.setenv("BASTION_PASSPHRASE", TEST_PASSPHRASE)
    yield


@pytest.fixture(autouse=True, scope="session")
def _cli_tree_built_once() -> Iterator[None]:
    """``bastion.cli.run`` builds the click tree from the Typer app on every call (about 30 ms of CPU; once
    per process in real use). Tests call it hundreds of times, so it is built once per session here. The
    tree depends on no environment variable or working directory (tests/cli/test_command_tree.py checks
    that): every in-process call still parses its arguments through the tree a fresh process would build."""
    try:
        import bastion.cli as cli
    except ImportError:
        yield
        return
    original = cli.build_command
    built: list[Any] = []

    def build_once() -> Any:
        if not built:
            built.append(original())
        return built[0]

    cli.build_command = build_once  # type: ignore[assignment]
    try:
        yield
    finally:
        cli.build_command = original  # type: ignore[assignment]


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """Keep torch on one thread per test process: CI has 2 cores and may run 2 workers."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


# The longest test files, longest first (seconds in one process on the 2-core reference machine, round 11):
# collected first, so that with ``-n 2`` (the README's test command; xdist hands each worker a run of tests
# in collection order) a worker starts them at once instead of the suite waiting on one of them at its end.
# (``--dist loadfile`` would keep a file on one worker but hands out the files with most tests first: the
# one-test README walk then ran last, alone: 12:14 against 11:37, quiet, round 12.)
_LONG_FIRST = (
    "test_readme_walk.py",  # ~170 s: every README command
    "serve/test_theft.py",  # ~90 s: 2 x 100 benign streams
    "privacy/federated/test_federated.py",  # ~75 s: real Flower federations
    "ui/test_demo.py",  # ~30 s: the demo's whole lifecycle
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        rel = Path(str(item.path)).resolve().relative_to(root.resolve()).as_posix()
        return _LONG_FIRST.index(rel) if rel in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # (stable: every other test keeps its order)

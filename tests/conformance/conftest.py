"""Shared fixtures of the conformance tests: one metadata-store URL per back end (SQLite file; PostgreSQL in a
fresh schema when ``BASTION_TEST_POSTGRES_URL`` is set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._support.postgres import postgres_schema


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'meta.db'}"


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param(_sqlite, id="sqlite"),
        pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from request.param(tmp_path, request)

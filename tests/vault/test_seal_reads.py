"""A check reads rows and their seal in separate statements: a writer committing in between is not tampering.

Round 14's CI failed once on PostgreSQL: three vaults pushed ``m`` at once and one push's own ``show`` read
the version pointers before a sibling's commit and their seal after it, and called an honest registry
tampered. These tests put that commit exactly between the two reads, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests._support.postgres import postgres_schema

from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError, ServiceError
from bastion.store import seals as store_seals
from bastion.vault import Vault, _seals, init_project, open_vault

PASSPHRASE = "pw"


def _make(home: Path, url: str | None) -> Vault:
    return init_project(
        home=home,
        passphrase=PASSPHRASE,
        database_url=url,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    if request.param == "sqlite":
        v = _make(tmp_path / "home", None)
        yield v
        v.close()
        return
    url = request.getfixturevalue("postgres_url")
    with postgres_schema(url, prefix="bastion") as schema_url:
        v = _make(tmp_path / "home", schema_url)
        yield v
        v.close()


def _commit_between_reads(
    monkeypatch: pytest.MonkeyPatch, target: str, writer: Callable[[], Any], *, times: int = 1
) -> list[int]:
    """Run ``writer`` (another vault's commit) right after ``_seals.<target>`` computes its state."""
    real = getattr(_seals, target)
    fired: list[int] = []
    busy: list[bool] = []  # the writer's own reads do not fire another writer

    def racing(*args: Any, **kwargs: Any) -> Any:
        state = real(*args, **kwargs)
        if len(fired) < times and not busy:
            fired.append(1)
            busy.append(True)
            try:
                writer()
            finally:
                busy.clear()
        return state

    monkeypatch.setattr(_seals, target, racing)
    return fired


def test_a_push_committing_between_pointer_and_seal_reads_is_not_tampering(
    backend: Vault, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.push(artifact, name="m", allow_unsafe=True)
    other = open_vault(home=backend.settings.home, passphrase=PASSPHRASE, inspectors=[])
    try:
        fired = _commit_between_reads(
            monkeypatch, "pointer_state", lambda: other.push(artifact, name="m", allow_unsafe=True)
        )
        shown = backend.show("m")  # the old code raised IntegrityError here
    finally:
        other.close()
    assert fired == [1]
    # PostgreSQL's READ COMMITTED re-reads and sees the sibling's version; SQLite's read transaction keeps
    # its snapshot, where version 1 was the newest: both are honest answers, neither is "tampered".
    assert shown.version == (2 if backend.engine.dialect.name == "postgresql" else 1)
    monkeypatch.undo()
    assert backend.show("m").version == 2
    backend.log_verify()


def test_an_annotation_committing_between_reads_is_not_tampering(
    backend: Vault, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.push(artifact, name="m", allow_unsafe=True)
    other = open_vault(home=backend.settings.home, passphrase=PASSPHRASE, inspectors=[])
    try:
        fired = _commit_between_reads(
            monkeypatch,
            "annotation_state",
            lambda: other.annotate("m:1", namespace="audit", data={"ok": True}),
        )
        shown = backend.show("m:1")
    finally:
        other.close()
    assert fired == [1]
    assert shown.version == 1


def test_real_tampering_is_still_refused(backend: Vault, artifact: Path) -> None:
    """The re-read only waits out commits: rows changed without a new seal still fail."""
    backend.push(artifact, name="m", allow_unsafe=True)
    backend.push(artifact, name="m", allow_unsafe=True)
    with backend.engine.begin() as conn:  # an insider rolls NAME back by deleting the newest wrap row
        newest = conn.execute(sa.text("SELECT max(id) FROM wrapped_keys")).scalar()
        conn.execute(sa.text("DELETE FROM wrapped_keys WHERE id = :i"), {"i": newest})
    with pytest.raises(IntegrityError, match="version pointers"):
        backend.show("m")


def test_a_seal_that_never_settles_is_a_service_error_not_a_pass(
    backend: Vault, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's read transaction keeps one snapshot: its seal cannot move under a reader")
    backend.push(artifact, name="m", allow_unsafe=True)
    other = open_vault(home=backend.settings.home, passphrase=PASSPHRASE, inspectors=[])
    monkeypatch.setattr(store_seals, "READ_ATTEMPTS", 3)
    try:
        fired = _commit_between_reads(
            monkeypatch,
            "pointer_state",
            lambda: other.push(artifact, name="m", allow_unsafe=True),
            times=3,
        )
        with pytest.raises(ServiceError, match="kept changing"):
            backend.show("m")
    finally:
        other.close()
    assert fired == [1, 1, 1]

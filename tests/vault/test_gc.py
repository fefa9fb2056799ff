"""``registry gc``: orphan blobs (left by crashed or refused pushes) are listed, then deleted on request,
by an admin only; a push in flight is never robbed (the grace period), shown with and without it."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import AccessDenied, IntegrityError
from bastion.store.blobs import FileBlobStore
from bastion.vault import Vault, init_project

from .conftest import PASSPHRASE, make_artifact

DAY = 24 * 3600


def _age(store: FileBlobStore, blob_id: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(store.path(blob_id), (t, t))


def test_dry_run_then_delete_only_old_unreferenced_blobs(vault: Vault, tmp_path: Path) -> None:
    blobs = vault.blobs
    assert isinstance(blobs, FileBlobStore)
    vault.push(make_artifact(tmp_path / "m"), name="m")
    used = {b for b in blobs.digests()}
    old = blobs.put(io.BytesIO(b"orphan of a crashed push"))
    _age(blobs, old, 2 * DAY)
    young = blobs.put(io.BytesIO(b"a push still running"))
    stale_tmp = blobs.root / ".tmp-killed"
    stale_tmp.write_bytes(b"x")
    t = time.time() - 2 * DAY
    os.utime(stale_tmp, (t, t))
    for u in used:
        _age(blobs, u, 3 * DAY)  # old but referenced: kept

    found = vault.gc_blobs()  # dry run by default
    assert found.dry_run and found.orphans == (old,) and found.temporaries == 1 and found.recent == 1
    assert found.bytes == len(b"orphan of a crashed push") and blobs.exists(old) and stale_tmp.exists()

    done = vault.gc_blobs(dry_run=False)
    assert not done.dry_run and done.orphans == (old,)
    assert not blobs.exists(old) and not stale_tmp.exists() and blobs.exists(young)
    assert all(blobs.exists(u) for u in used)
    vault.verify("m")
    logged = [(e.action, e.details.get("dry_run"), e.details.get("orphans")) for e in vault.audit.entries()]
    assert logged[-3:] == [
        ("registry:gc", True, 1),
        ("registry:gc", False, 1),
        ("registry:verify", None, None),
    ]


def test_admin_only_and_the_refusal_is_logged(vault: Vault, opener) -> None:  # type: ignore[no-untyped-def]
    _, token = vault.create_token(name="ds", role="data-scientist")
    ds = opener(token)
    with pytest.raises(AccessDenied):
        ds.gc_blobs(dry_run=False)
    last = vault.audit.entries()[-1]
    assert (last.actor, last.action, last.outcome) == ("ds", "registry:gc", "denied")


@pytest.mark.parametrize("grace", [DAY, 0.0], ids=["with-grace", "without-grace"])
def test_a_push_in_flight_is_not_robbed(tmp_path: Path, grace: float) -> None:
    """The attack on the collector: it runs while a push has written its blobs but not yet committed.
    With the grace period the push's blobs are kept; without it they are deleted and the committed
    version no longer verifies (which is why the grace period exists)."""
    holder: dict[str, Vault] = {}

    def collect_during_push(path: Path) -> None:  # runs after the blobs are stored, before the commit
        holder["v"].gc_blobs(dry_run=False, min_age_s=grace)

    v = init_project(
        home=tmp_path / "home",
        passphrase=PASSPHRASE,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[collect_during_push],
    )
    holder["v"] = v
    try:
        v.push(make_artifact(tmp_path / "m"), name="m")
        if grace:
            v.verify("m")
        else:
            with pytest.raises(IntegrityError):
                v.verify("m")
    finally:
        v.close()

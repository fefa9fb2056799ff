"""Collecting orphan blobs: what a crashed or refused push left in the blob store (``bastion registry gc``).

A push writes its blobs before the transaction that makes the version visible, so a crash leaves blobs no
version refers to (and ``.tmp-*`` temporaries). Collection deletes only what is *both* unreferenced by any
version row *and* older than a grace period, so a push still running (its blobs written, its commit not yet
made) is never robbed: the grace period must exceed the longest push.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import BastionError, InvalidInput
from bastion.store.blobs import FileBlobStore
from bastion.store.interface import BlobStore
from bastion.store.tables import files
from bastion.vault.refs import BlobCollection

DEFAULT_MIN_AGE_S = 24 * 3600.0


def collect(
    *,
    blobs: BlobStore,
    engine: Engine,
    dry_run: bool,
    min_age_s: float,
    now: Callable[[], float] = time.time,
) -> BlobCollection:
    """Find (and unless ``dry_run`` delete) unreferenced blobs and temporaries older than ``min_age_s``."""
    if not isinstance(blobs, FileBlobStore):
        raise InvalidInput("this blob store cannot list its blobs: collect its orphans with its own tools")
    if min_age_s < 0:
        raise InvalidInput("the grace period cannot be negative")
    cutoff = now() - min_age_s
    old: list[tuple[str, int]] = []
    recent = 0
    for digest in blobs.digests():  # listed *before* the references are read: a commit in between is kept
        try:
            st = blobs.path(digest).stat()
        except FileNotFoundError:
            continue
        if st.st_mtime <= cutoff:
            old.append((digest, st.st_size))
        else:
            recent += 1
    with engine.connect() as conn:
        referenced = set(conn.execute(sa.select(files.c.blob).distinct()).scalars())
    orphans = [(d, size) for d, size in old if d not in referenced]
    temporaries = []
    for tmp in blobs.root.glob(".tmp-*"):
        try:
            if tmp.stat().st_mtime <= cutoff:
                temporaries.append(tmp)
        except FileNotFoundError:
            continue
    if not dry_run:
        for digest, _ in orphans:
            try:
                blobs.delete(digest)
            except (OSError, BastionError) as exc:
                raise InvalidInput(f"could not delete blob {digest[:15]}… ({exc})") from exc
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return BlobCollection(
        dry_run=dry_run,
        orphans=tuple(sorted(d for d, _ in orphans)),
        temporaries=len(temporaries),
        bytes=sum(size for _, size in orphans),
        recent=recent,
    )


__all__ = ["DEFAULT_MIN_AGE_S", "collect"]

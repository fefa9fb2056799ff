"""The tamper-evident audit log: an append-only RFC 6962 Merkle tree with signed tree heads.

Every entry is canonical JSON (``actor``, ``action``, ``target``, ``outcome``, ``details``, ``timestamp``,
``index``) hashed as a Merkle leaf. Each append signs a new tree head (size, root, timestamp) with the home's
Ed25519 key, in the same database transaction, under the store's write lock, so concurrent writers get
distinct consecutive indices. :meth:`AuditLog.verify` recomputes every leaf and every root from the stored
entries and checks them against the signed heads: an edited, deleted, reordered, inserted or truncated entry
is detected. A rollback of entries *and* heads together is caught by the witness file (the latest signed head,
kept outside the database) or by a head the caller saved earlier (``trusted=``).

Witnesses (:mod:`bastion.store.witness`) keep heads *outside the home*: after every append (or once at the end
of a :meth:`AuditLog.batch`) the latest head is pushed to each, with a consistency proof from the head the
witness holds; :meth:`AuditLog.verify` checks a consistency proof from every witnessed head to the current
head.
A failed push is logged as a warning and leaves the window since the last witnessed head open; a failed read
at verify time is an error (never an OK).

The records (entries, heads, proofs) are in :mod:`bastion.store.logrecords` and re-exported here. This module
stays one class over ~400 lines on purpose: append, verify, proofs and witnessing share the write lock, the
leaf cache and the signed heads, and splitting them would spread one invariant over several files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import BastionError, IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.store import merkle
from bastion.store.db import utcnow, write_transaction
from bastion.store.interface import HeadSigner, Witness
from bastion.store.logrecords import (
    LOG_ID,
    OUTCOMES,
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
    WitnessCheck,
    canonical_json,
    leaf_encoding,
    tree_head_data,
)
from bastion.store.tables import audit_entries, tree_heads

logger = logging.getLogger(__name__)


class AuditLog:
    """Append-only Merkle audit log stored in the metadata database."""

    def __init__(
        self,
        engine: Engine,
        signer: HeadSigner,
        *,
        witness_path: str | os.PathLike[str] | None = None,
        witnesses: Sequence[Witness] = (),
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.witness_path = Path(witness_path) if witness_path is not None else None
        self.witnesses = tuple(witnesses)
        self._now = now
        self._deferred = 0
        self._dirty = False
        self._accepted: dict[str, SignedTreeHead] = {}  # per witness: the last head it took from us
        self._leaf_cache: list[bytes] = []

    # --- writing --------------------------------------------------------------------------------------------

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry and sign the new tree head, atomically."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"audit outcome must be one of {', '.join(OUTCOMES)}")
        timestamp = self._now().isoformat()
        with write_transaction(self.engine) as conn:
            head = conn.execute(
                sa.select(tree_heads.c.size, tree_heads.c.frontier)
                .order_by(tree_heads.c.size.desc())
                .limit(1)
            ).first()
            size, frontier = (int(head.size), merkle.unpack(head.frontier)) if head else (0, [])
            entry = AuditEntry(
                index=size,
                actor=actor,
                action=action,
                target=target,
                outcome=outcome,
                timestamp=timestamp,
                details=dict(details or {}),
            )
            data = entry.leaf_data()
            leaf = merkle.leaf_hash(data)
            frontier = merkle.frontier_append(frontier, size, leaf)
            root = merkle.frontier_root(frontier)
            signature = self.signer.sign(tree_head_data(size + 1, root, timestamp))
            conn.execute(sa.insert(audit_entries).values(idx=size, data=data, leaf_hash=leaf))
            conn.execute(
                sa.insert(tree_heads).values(
                    size=size + 1,
                    root_hash=root,
                    timestamp=timestamp,
                    frontier=merkle.pack(frontier),
                    signature=signature,
                )
            )
        if self.witness_path is not None:  # after commit: the witness never runs ahead of the database
            sth = SignedTreeHead(size=size + 1, root_hash=root, timestamp=timestamp, signature=signature)
            self._write_witness(sth)
        self._dirty = True
        if not self._deferred:
            self.publish()
        return entry

    def close(self) -> None:
        """Close the witnesses' connections (an HTTP witness keeps one open per process)."""
        for witness in self.witnesses:
            closer = getattr(witness, "close", None)
            if callable(closer):
                closer()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer pushing heads to the witnesses until the outermost batch ends (one push per batch)."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            if not self._deferred:
                self.publish()

    def publish(self, *, strict: bool = False) -> None:
        """Push the current signed head to every witness, with a consistency proof from the head it holds.

        A witness whose heads the log no longer extends raises IntegrityError (the log was rewritten). Other
        failures are logged as warnings (``strict``: raised) — the entries stay committed either way.
        """
        if not self.witnesses or not self._dirty:
            return
        self._dirty = False
        head = self.tree_head()
        for witness in self.witnesses:
            try:
                self._push(witness, head)
            except IntegrityError:
                raise
            except BastionError as exc:
                if strict:
                    raise
                logger.warning("audit log: head %d not witnessed by %s: %s", head.size, witness.name, exc)

    def _push(self, witness: Witness, head: SignedTreeHead) -> None:
        cached = self._accepted.get(witness.name)
        if cached is not None and cached.size < head.size:
            try:  # the head it accepted from this process last time: no need to ask it first
                self._submit(witness, cached, head)
                return
            except IntegrityError:
                pass  # another writer pushed since: ask it which head it holds, then try once more
        held = [h for h in witness.heads() if h.size > 0]
        if held and held[-1].size >= head.size:
            return  # already witnessed (by a concurrent writer): verify checks it
        self._submit(witness, held[-1] if held else None, head)

    def _submit(self, witness: Witness, held: SignedTreeHead | None, head: SignedTreeHead) -> None:
        proof = None
        if held is not None and getattr(witness, "needs_proof", True):
            # only for witnesses that check the proof themselves; leaf hashes are cached per process
            self._check_witnessed(witness.name, held, head, leaves=None)  # signature and size
            leaves = self._cached_leaves()
            if len(leaves) < head.size:
                raise IntegrityError(f"audit log: truncated below its own signed head ({head.size})")
            proof = ConsistencyProof(
                old_size=held.size,
                new_size=head.size,
                old_root=held.root_hash,
                new_root=head.root_hash,
                path=tuple(merkle.consistency_path(held.size, leaves[: head.size])),
            )
            try:  # checked here too: a rewritten log is reported as such, not as a witness refusal
                proof.verify()
            except IntegrityError as exc:
                raise IntegrityError(
                    f"audit log: the first {held.size} entries changed since witness {witness.name} saw them"
                ) from exc
        witness.submit(head, proof)
        self._accepted[witness.name] = head

    def _cached_leaves(self) -> list[bytes]:
        """The stored leaf hashes, read incrementally (the log is append-only; a mismatch re-reads it all)."""
        cache = self._leaf_cache
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_entries.c.idx, audit_entries.c.leaf_hash)
                .where(audit_entries.c.idx >= len(cache))
                .order_by(audit_entries.c.idx)
            ).all()
        if any(int(r.idx) != len(cache) + i for i, r in enumerate(rows)):
            self._leaf_cache = []
            return [leaf for _, _, leaf in self._leaves()]
        cache.extend(bytes(r.leaf_hash) for r in rows)
        return cache

    def _check_witnessed(
        self, name: str, seen: SignedTreeHead, head: SignedTreeHead, *, leaves: list[bytes] | None = None
    ) -> SignedTreeHead:
        """``seen`` (a head a witness holds) must be signed by this log and a prefix of ``head``.

        With ``leaves`` (None: signature and size only; ``[]``: read them) the RFC 6962 consistency proof from
        ``seen`` to ``head`` is computed from the stored leaves and verified against both signed roots.
        """
        try:
            self._check_signature(seen)
        except IntegrityError as exc:
            raise IntegrityError(f"audit log: witness {name} holds a head this log did not sign") from exc
        if seen.size > head.size:
            raise IntegrityError(
                f"audit log: truncated ({head.size} entries, witness {name} saw {seen.size})"
            )
        if leaves is None:
            return seen
        if not leaves:
            leaves = [leaf for _, _, leaf in self._leaves()]
        try:
            if len(leaves) < head.size:
                raise IntegrityError("truncated")
            path = tuple(merkle.consistency_path(seen.size, leaves[: head.size]))
            ConsistencyProof(
                old_size=seen.size,
                new_size=head.size,
                old_root=seen.root_hash,
                new_root=head.root_hash,
                path=path,
            ).verify()
        except (IntegrityError, ValueError) as exc:
            raise IntegrityError(
                f"audit log: the first {seen.size} entries changed since witness {name} saw them"
            ) from exc
        return seen

    def _write_witness(self, head: SignedTreeHead) -> None:
        assert self.witness_path is not None
        current = self._witness_or_none()
        if current is not None and current.size >= head.size:
            return  # a concurrent writer already recorded a later head
        atomic_write(self.witness_path, canonical_json(head.to_dict()))

    def _witness_or_none(self) -> SignedTreeHead | None:
        try:
            return self._witness()
        except IntegrityError:
            return None

    # --- reading --------------------------------------------------------------------------------------------

    def _heads(self) -> list[SignedTreeHead]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tree_heads).order_by(tree_heads.c.size)).all()
        return [
            SignedTreeHead(
                size=int(r.size), root_hash=r.root_hash, timestamp=r.timestamp, signature=r.signature
            )
            for r in rows
        ]

    def _leaves(self) -> list[tuple[int, bytes, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_entries.c.idx, audit_entries.c.data, audit_entries.c.leaf_hash).order_by(
                    audit_entries.c.idx
                )
            ).all()
        return [(int(r.idx), r.data, r.leaf_hash) for r in rows]

    def tree_head(self) -> SignedTreeHead:
        """The latest signed tree head (its signature checked)."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(tree_heads).order_by(tree_heads.c.size.desc()).limit(1)).first()
        if r is None:
            raise NotFound("the audit log is empty")
        head = SignedTreeHead(
            size=int(r.size), root_hash=r.root_hash, timestamp=r.timestamp, signature=r.signature
        )
        self._check_signature(head)
        return head

    def size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one())

    def entries(self, *, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        query = (
            sa.select(audit_entries.c.data).where(audit_entries.c.idx >= start).order_by(audit_entries.c.idx)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [AuditEntry.from_leaf(d) for d in conn.execute(query).scalars()]

    def _check_signature(self, head: SignedTreeHead) -> None:
        try:
            self.signer.verify(head.signed_data(), head.signature)
        except IntegrityError:
            raise
        except Exception as exc:  # any verifier failure is a bad signature
            raise IntegrityError(f"audit log: tree head of size {head.size} has a bad signature") from exc

    def _verified_leaves(self) -> list[bytes]:
        hashes: list[bytes] = []
        for expected, (idx, data, stored) in enumerate(self._leaves()):
            if idx != expected:
                raise IntegrityError(f"audit log: entry {expected} is missing (found {idx})")
            entry = AuditEntry.from_leaf(data)
            if entry.index != idx or not entry.matches_leaf(bytes(data)):
                raise IntegrityError(f"audit log: entry {idx} was modified or moved")
            leaf = merkle.leaf_hash(data)
            if leaf != stored:
                raise IntegrityError(f"audit log: entry {idx} does not match its leaf hash")
            hashes.append(leaf)
        return hashes

    def verify(self, *, trusted: SignedTreeHead | None = None) -> LogVerification:
        """Recompute the whole tree and check it against every signed head; raises IntegrityError."""
        leaves = self._verified_leaves()
        heads = self._heads()
        if not heads and not leaves:
            anchors = [h for h in (trusted, self._witness()) if h is not None and h.size > 0]
            anchors += [h for w in self.witnesses for h in w.heads() if h.size > 0]
            if anchors:
                raise IntegrityError("audit log: entries were deleted (the log is empty)")
            return LogVerification(size=0, root_hash=merkle.EMPTY_ROOT, heads_checked=0)
        if not heads:
            raise IntegrityError("audit log: entries exist without a signed tree head")
        latest = heads[-1]
        if len(leaves) > latest.size:
            raise IntegrityError(
                f"audit log: {len(leaves) - latest.size} entries are not covered by a signed head"
            )
        if len(leaves) < latest.size:
            raise IntegrityError(
                f"audit log: truncated ({len(leaves)} entries, signed head says {latest.size})"
            )
        witnessed = [(w.name, [h for h in w.heads() if h.size > 0]) for w in self.witnesses]
        seen_at: dict[int, list[tuple[str, SignedTreeHead]]] = {}
        for name, held in witnessed:
            for seen in held:  # every head a witness kept: signed by this log, and a prefix of it
                self._check_witnessed(name, seen, latest, leaves=None)
                seen_at.setdefault(seen.size, []).append((name, seen))
        by_size = {h.size: h for h in heads}
        frontier: list[bytes] = []
        for i, leaf in enumerate(leaves):
            frontier = merkle.frontier_append(frontier, i, leaf)
            head = by_size.get(i + 1)
            if head is not None:
                self._check_signature(head)
                if merkle.frontier_root(frontier) != head.root_hash:
                    raise IntegrityError(
                        f"audit log: the tree of size {i + 1} does not match its signed head"
                    )
            for name, seen in seen_at.get(i + 1, ()):
                if merkle.frontier_root(frontier) != seen.root_hash:
                    raise IntegrityError(
                        f"audit log: the first {seen.size} entries changed since witness {name} saw them"
                    )
        for anchor in (trusted, self._witness()):
            if anchor is None:
                continue
            self._check_signature(anchor)
            if anchor.size > len(leaves):
                raise IntegrityError(
                    f"audit log: truncated ({len(leaves)} entries, a saved head says {anchor.size})"
                )
            if merkle.root_of(leaves[: anchor.size]) != anchor.root_hash:
                raise IntegrityError(f"audit log: the first {anchor.size} entries changed since a saved head")
        checks = []
        for name, held in witnessed:
            if held:  # and the RFC 6962 consistency proof from the latest witnessed head to the current one
                self._check_witnessed(name, max(held, key=lambda h: h.size), latest, leaves=leaves)
            size = max((h.size for h in held), default=0)
            checks.append(WitnessCheck(witness=name, size=size, heads=len(held)))
        return LogVerification(
            size=latest.size, root_hash=latest.root_hash, heads_checked=len(heads), witnesses=tuple(checks)
        )

    def _witness(self) -> SignedTreeHead | None:
        if self.witness_path is None or not self.witness_path.exists():
            return None
        try:
            return SignedTreeHead.from_dict(json.loads(self.witness_path.read_bytes()))
        except ValueError as exc:
            raise IntegrityError("audit log: the witness head file is corrupt") from exc

    # --- proofs ---------------------------------------------------------------------------------------------

    def prove_inclusion(self, index: int, *, tree_size: int | None = None) -> InclusionProof:
        """Audit path for entry ``index`` in the tree of ``tree_size`` (default: the latest signed head)."""
        leaves = [leaf for _, _, leaf in self._leaves()]
        size = len(leaves) if tree_size is None else tree_size
        if not 0 <= index < size <= len(leaves):
            raise NotFound(f"no audit entry {index} in a log of size {size}")
        prefix = leaves[:size]
        return InclusionProof(
            index=index,
            tree_size=size,
            leaf_hash=prefix[index],
            path=tuple(merkle.inclusion_path(index, prefix)),
            root_hash=merkle.root_of(prefix),
        )

    def prove_consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        leaves = [leaf for _, _, leaf in self._leaves()]
        if not 0 <= old_size <= new_size <= len(leaves):
            raise InvalidInput(f"sizes must satisfy 0 <= old <= new <= {len(leaves)}")
        prefix = leaves[:new_size]
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=merkle.root_of(leaves[:old_size]),
            new_root=merkle.root_of(prefix),
            path=tuple(merkle.consistency_path(old_size, prefix)),
        )

    def signed_head(self, size: int) -> SignedTreeHead:
        """The stored signed head of ``size`` entries (signature checked)."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(tree_heads).where(tree_heads.c.size == size)).first()
        if r is None:
            raise NotFound(f"no signed tree head of size {size}")
        head = SignedTreeHead(
            size=int(r.size), root_hash=r.root_hash, timestamp=r.timestamp, signature=r.signature
        )
        self._check_signature(head)
        return head


__all__ = [
    "LOG_ID",
    "OUTCOMES",
    "AuditEntry",
    "AuditLog",
    "ConsistencyProof",
    "HeadSigner",
    "InclusionProof",
    "LogVerification",
    "SignedTreeHead",
    "WitnessCheck",
    "canonical_json",
    "leaf_encoding",
    "tree_head_data",
]

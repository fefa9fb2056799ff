"""Plug-in points of the store, each with the contract its implementations are tested against
(``tests/conformance/``, one shared test module per axis, run for every implementation).

- :class:`BlobStore` — where encrypted bytes live (``FileBlobStore``; object storage in a larger deployment).
- :class:`AuditSink` — what an audit-log writer needs (``AuditLog``; the gateway's batched writer).
- :class:`HeadSigner` — what the audit log needs from a signing key (``crypto.signing`` keys).
- :class:`Witness` — keeps signed tree heads outside the home (file, HTTP).
- Metadata stores are SQLAlchemy URLs (SQLite, PostgreSQL) opened by :func:`bastion.store.db.open_engine`;
  the contract is in :data:`METADATA_STORE_CONTRACT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bastion.store.auditlog import ConsistencyProof, SignedTreeHead


@runtime_checkable
class BlobStore(Protocol):
    """Where encrypted bytes live. Contract (``tests/conformance/test_blob_stores.py``):

    - ``put(stream)`` stores every byte ``stream`` yields and returns its id, a content address (the same
      bytes give the same id; putting them twice is harmless and keeps one blob);
    - ``open(id)`` returns a binary file with exactly those bytes (seekable), ``NotFound`` if there is none;
      a malformed id raises ``InvalidInput`` (never a path outside the store);
    - ``exists(id)``; ``delete(id)`` removes it and is idempotent (a missing blob is no error).

    A store is untrusted storage: it never sees plaintext, and its integrity is not relied on — a changed
    blob is caught by the AEAD when it is read (``IntegrityError``), a missing one is ``NotFound``.
    """

    def put(self, stream: BinaryIO) -> str: ...

    def open(self, digest: str) -> BinaryIO: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...


@runtime_checkable
class AuditSink(Protocol):
    """Where an action's audit entry goes. Contract (``tests/conformance/test_audit_sinks.py``):

    ``append`` records ``actor``, ``action``, ``target``, ``outcome`` (``ok``, ``denied`` or ``error``;
    anything else raises ``InvalidInput``) and JSON ``details`` as one entry, in order; once the call (or
    the sink's flush/close) returns, the entry is in the tamper-evident log (``AuditLog.verify`` passes and
    covers it).
    """

    def append(
        self, *, actor: str, action: str, target: str, outcome: str, details: Mapping[str, Any] | None = None
    ) -> Any: ...


class HeadSigner(Protocol):
    """What the log needs from a signing key (``crypto.signing.SigningKeys`` provides it): ``verify``
    raises for a signature ``sign`` did not make over exactly these bytes."""

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, data: bytes, signature: bytes) -> None: ...


@runtime_checkable
class Witness(Protocol):
    """Keeps the signed tree heads of one audit log outside its home.

    ``submit`` hands over a head (with the consistency proof from the witness's latest head, when it has one);
    ``heads`` returns the heads the witness holds that a verifier must check the log against (the latest one
    at least), each already authenticated by the witness's own means (its countersignature, its storage).
    A log rolled back by the home's holder then fails ``AuditLog.verify`` (``tests/conformance/
    test_witnesses.py``, for the file and the HTTPS witness).
    """

    name: str

    def submit(self, head: SignedTreeHead, proof: ConsistencyProof | None) -> None: ...

    def heads(self) -> list[SignedTreeHead]: ...


METADATA_STORE_CONTRACT = """\
A metadata store is a database URL that open_engine() opens and ensure_tables() prepares (idempotently).
write_transaction() serialises writers (audit-log appends and version numbering from concurrent processes
get distinct, consecutive numbers); a transaction that raises leaves nothing behind; timestamps come back as
the same instant (UTC); large binary columns round-trip byte for byte. Tested for SQLite and PostgreSQL
(BASTION_TEST_POSTGRES_URL) in tests/conformance/test_metadata_stores.py."""


__all__ = ["METADATA_STORE_CONTRACT", "AuditSink", "BlobStore", "HeadSigner", "Witness"]

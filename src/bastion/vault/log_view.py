"""The audit log and the stored state's seals, as the caller may see them (``vault.log``).

Reading the log needs ``log:read``; the checks here go beyond the log's own (:class:`~bastion.store.auditlog.
AuditLog`): a verified log is also replayed against the sealed registry and access rows (a database writer
replaying an older, validly sealed state is caught), and every proof is checked before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.errors import IntegrityError
from bastion.store.auditlog import (
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
)
from bastion.store.db import write_transaction
from bastion.store.interface import Witness
from bastion.vault._context import VaultContext
from bastion.vault._seals import cross_check_log, seal_registry, unsealed_registry


class LogView:
    """Verify, read and prove the audit log; list and (owner) re-seal the stored authorization state."""

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx

    def verify(
        self, *, trusted: SignedTreeHead | None = None, witnesses: Sequence[Witness] = ()
    ) -> LogVerification:
        """Recompute the audit log against its signed heads (and ``trusted``); raises IntegrityError.

        ``witnesses`` are checked besides the home's ``[[log.witness]]`` tables: a verifier names them from
        outside the home (``log verify --witness``), so deleting the tables from bastion.toml hides nothing.
        """
        ctx = self.ctx
        ctx.check("log:read")
        configured = ctx.audit.witnesses
        ctx.audit.witnesses = tuple(configured) + tuple(witnesses)
        try:
            result = ctx.audit.verify(trusted=trusted)
        finally:
            ctx.audit.witnesses = configured
        entries = ctx.audit.entries()
        with ctx.engine.connect() as conn:  # replayed sealed rows still have to agree with the log
            cross_check_log(conn, entries)
        ctx.access.cross_check_log(entries)
        # the response state (blocks, quarantines) is the latest the log records: not deleted nor rolled back
        from bastion.store.response_state import load_current, logged_state, state_path

        load_current(state_path(ctx.settings.home), ctx.signer, logged_state(entries))
        return result

    def head(self) -> SignedTreeHead:
        self.ctx.check("log:read")
        return self.ctx.audit.tree_head()

    def public_key_pem(self) -> str:
        """The Ed25519 key that signs tree heads (public: what witnesses pin)."""
        return self.ctx.signer.public_key_pem()  # type: ignore[no-any-return]

    def entries(self, *, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        self.ctx.check("log:read")
        return self.ctx.audit.entries(start=start, limit=limit)

    def prove(self, index: int) -> InclusionProof:
        """Inclusion proof of entry ``index`` in the latest signed head (checked before it is returned)."""
        ctx = self.ctx
        ctx.check("log:read")
        head = ctx.audit.tree_head()
        proof = ctx.audit.prove_inclusion(index, tree_size=head.size)
        if proof.root_hash != head.root_hash:
            raise IntegrityError("audit log: the stored entries do not match the latest signed head")
        proof.verify()
        return proof

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two signed heads (both signatures and the proof checked)."""
        ctx = self.ctx
        ctx.check("log:read")
        proof = ctx.audit.prove_consistency(old_size, new_size)
        for size, root in ((old_size, proof.old_root), (new_size, proof.new_root)):
            if size and ctx.audit.signed_head(size).root_hash != root:
                raise IntegrityError(f"audit log: the tree of size {size} does not match its signed head")
        proof.verify()
        return proof

    def unsealed_state(self) -> list[str]:
        """Identities, artifact names and ``NAME:VERSION`` whose seal is missing or does not match."""
        ctx = self.ctx
        ctx.check("access:manage")
        with ctx.engine.connect() as conn:
            registry = unsealed_registry(conn, ctx.sealer)
        return ctx.access.unsealed() + registry

    def seal_state(self) -> list[str]:
        """Seal every identity, pointer set and version as it is now (owner only: the migration step)."""
        ctx = self.ctx
        listed = self.unsealed_state()
        ctx.access.seal_all()
        with write_transaction(ctx.engine) as conn:
            seal_registry(conn, ctx.sealer)
        ctx.log("registry:seal", "-", sealed=listed)
        return listed


__all__ = ["LogView"]

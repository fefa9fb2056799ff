"""Plug-in points of the store: where signed tree heads of the audit log are witnessed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bastion.store.auditlog import ConsistencyProof, SignedTreeHead


class Witness(Protocol):
    """Keeps the signed tree heads of one audit log outside its home.

    ``submit`` hands over a head (with the consistency proof from the witness's latest head, when it has one);
    ``heads`` returns the heads the witness holds that a verifier must check the log against (the latest one
    at least), each already authenticated by the witness's own means (its countersignature, its storage).
    """

    name: str

    def submit(self, head: SignedTreeHead, proof: ConsistencyProof | None) -> None: ...

    def heads(self) -> list[SignedTreeHead]: ...


__all__ = ["Witness"]

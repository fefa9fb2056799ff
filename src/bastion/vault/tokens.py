"""API tokens (``vault.tokens``): mint, authenticate, list and revoke, over ``AccessControl``.

Minting, listing and revoking need ``access:manage`` (checked and logged by the access layer, which keeps the
sealed identity rows); a token string is returned once and never stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.access import Identity, TokenInfo
from bastion.vault._context import VaultContext


class Tokens:
    """Token lifecycle for the opened project, acting as the context's identity."""

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx

    def create(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        """A new API token (admin only); the token string is returned once and never stored."""
        return self.ctx.access.create_token(name=name, role=role, models=models, envs=envs)

    def authenticate(self, token: str) -> Identity:
        """The identity ``token`` belongs to (AccessDenied for an unknown, revoked or expired token)."""
        return self.ctx.access.authenticate(token)

    def list(self) -> list[TokenInfo]:
        return self.ctx.access.list_tokens()

    def revoke(self, token_id: str) -> None:
        self.ctx.access.revoke_token(token_id)


__all__ = ["Tokens"]

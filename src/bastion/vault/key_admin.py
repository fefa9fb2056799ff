"""Key administration (``vault.key_admin``): rotate, retire and list the environments' KEKs.

Rotation draws a new KEK version and rewraps every secret wrapped in that environment: each version's current
DEK wrap and every wrap a :class:`~bastion.crypto.interface.WrapHolder` keeps (data-protection scope keys,
watermark keys, …); nothing is re-encrypted. Retiring a KEK version is refused while anything still uses it.
All of it needs ``keys:rotate`` and writes one audit-log entry.
"""

from __future__ import annotations

import sqlalchemy as sa

from bastion.config import ENVIRONMENTS
from bastion.crypto.interface import KekInfo
from bastion.errors import Conflict, InvalidInput
from bastion.store.db import utcnow
from bastion.store.tables import wrapped_keys
from bastion.vault._context import VaultContext
from bastion.vault._records import Records, version_query
from bastion.vault.manifest import dek_context
from bastion.vault.refs import KeyRotation


class KeyAdmin:
    """KEK lifecycle for one :class:`VaultContext` (the key provider itself is ``vault.keys``)."""

    def __init__(self, ctx: VaultContext, records: Records | None = None) -> None:
        self.ctx = ctx
        self.records = records or Records(ctx)

    def rotate(self, *, env: str) -> KeyRotation:
        """New KEK version for ``env``; every secret wrapped in ``env`` is rewrapped under it."""
        ctx = self.ctx
        if env not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {env!r} (one of {', '.join(ENVIRONMENTS)})")
        ctx.check("keys:rotate", env=env)
        with ctx.logged_failure("keys:rotate", env):
            holders = ctx.wrap_holders()
            new_version = ctx.keys.rotate(env=env)
            with ctx.engine.connect() as conn:
                rows = conn.execute(version_query().where(wrapped_keys.c.env == env)).all()
            rewrapped = []
            for row in rows:
                dek = self.records.unwrap(row)
                rewrapped.append(
                    (row.id, ctx.keys.wrap(env=env, dek=dek, context=dek_context(row.name, int(row.version))))
                )
            now = utcnow()
            with ctx.engine.begin() as conn:
                for version_id, w in rewrapped:
                    conn.execute(
                        sa.insert(wrapped_keys).values(
                            version_id=version_id,
                            env=env,
                            kek_version=w.kek_version,
                            wrapped=w.to_json().encode(),
                            reason="rotate",
                            created_at=now,
                            created_by=ctx.identity.name,
                        )
                    )
            by_holder: dict[str, int] = {}
            for holder in holders:
                count = 0
                for h in holder.held():
                    if h.wrapped.env != env or h.wrapped.kek_version == new_version:
                        continue
                    secret = ctx.keys.unwrap(h.wrapped, context=h.context)
                    holder.replace(h.key, ctx.keys.wrap(env=env, dek=secret, context=h.context))
                    count += 1
                by_holder[holder.label] = count
        ctx.log(
            "keys:rotate", env, kek_version=new_version, rewrapped=len(rewrapped), rewrapped_other=by_holder
        )
        return KeyRotation(env=env, kek_version=new_version, rewrapped=len(rewrapped), other=by_holder)

    def users(self, *, env: str, version: int) -> dict[str, int]:
        """What still uses KEK ``env``/``version``: ``{what: count}`` (registry data keys, each holder)."""
        ctx = self.ctx
        with ctx.engine.connect() as conn:
            deks = conn.execute(
                sa.select(sa.func.count()).select_from(
                    version_query()
                    .where(wrapped_keys.c.env == env, wrapped_keys.c.kek_version == version)
                    .subquery()
                )
            ).scalar_one()
        users: dict[str, int] = {}
        if deks:
            users["registry data key(s)"] = int(deks)
        for holder in ctx.wrap_holders():
            n = sum(1 for h in holder.held() if h.wrapped.env == env and h.wrapped.kek_version == version)
            if n:
                users[holder.label] = n
        return users

    def retire(self, *, env: str, version: int) -> None:
        """Retire KEK ``version`` of ``env``; refused (naming them) while any secret still uses it."""
        ctx = self.ctx
        ctx.check("keys:rotate", env=env)
        with ctx.logged_failure("keys:retire", f"{env}/v{version}"):
            users = self.users(env=env, version=version)
            if users:
                listed = ", ".join(f"{n} {what}" for what, n in users.items())
                raise Conflict(f"KEK {env}/v{version} still wraps {listed}: run 'bastion keys rotate' first")
            ctx.keys.retire(env=env, version=version)
        ctx.log("keys:retire", f"{env}/v{version}")

    def list(self) -> list[KekInfo]:
        """Every KEK version of every environment (``keys:rotate``; logged)."""
        ctx = self.ctx
        ctx.check("keys:rotate")
        out: list[KekInfo] = []
        for env in ENVIRONMENTS:
            out.extend(ctx.keys.versions(env))
        ctx.log("keys:list", "*")
        return out


__all__ = ["KeyAdmin"]

"""Key administration (``vault.key_admin``): rotate, retire and list the environments' KEKs; un-promote.

Rotation draws a new KEK version and rewraps every secret wrapped in that environment: each version's current
DEK wrap and every wrap a :class:`~bastion.crypto.interface.WrapHolder` keeps (data-protection scope keys,
watermark keys, …); nothing is re-encrypted. Retiring a KEK version is refused while anything still uses it.
All of it needs ``keys:rotate`` and writes one audit-log entry.

:meth:`KeyAdmin.unpromote` is promotion backwards, for an incident response's quarantine: the version's DEK
is wrapped again under the previous environment's KEK (a new wrap row, ``reason`` ``quarantine``; nothing is
deleted), so ``NAME@ENV`` no longer resolves to it; :meth:`Vault.promote` moves it forward again (the undo).
It needs ``registry:promote`` in the version's environment.
"""

from __future__ import annotations

import sqlalchemy as sa

from bastion.config import ENVIRONMENTS
from bastion.crypto.interface import KekInfo
from bastion.errors import Conflict, InvalidInput
from bastion.store.db import utcnow, write_transaction
from bastion.store.tables import wrapped_keys
from bastion.vault._context import VaultContext
from bastion.vault._records import Records, version_query
from bastion.vault._seals import check_pointers, reseal_pointers
from bastion.vault.manifest import dek_context
from bastion.vault.refs import ArtifactRef, KeyRotation


class KeyAdmin:
    """KEK lifecycle for one :class:`VaultContext` (the key provider itself is ``vault.keys``)."""

    def __init__(self, ctx: VaultContext, records: Records | None = None) -> None:
        self.ctx = ctx
        self.records = records or Records(ctx)

    def unpromote(self, ref: str | ArtifactRef, *, reason: str = "quarantine") -> tuple[str, str, str] | None:
        """Move the version ``ref`` names back one environment; returns (``name:version``, from, to), or None
        when it is in the first environment already."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        with ctx.logged_failure("registry:unpromote", str(ref)):
            row, _ = records.load_verified(ref, "registry:read")
            ctx.check("registry:promote", model=row.name, env=row.env)
            index = ENVIRONMENTS.index(row.env)
            if index == 0:
                return None
            back = ENVIRONMENTS[index - 1]
            dek = records.unwrap(row)
            wrapped = ctx.keys.wrap(env=back, dek=dek, context=dek_context(row.name, int(row.version)))
            with write_transaction(ctx.engine) as conn:
                check_pointers(conn, ctx.sealer, row.name)
                conn.execute(
                    sa.insert(wrapped_keys).values(
                        version_id=row.id,
                        env=back,
                        kek_version=wrapped.kek_version,
                        wrapped=wrapped.to_json().encode(),
                        reason=reason[:16],
                        created_at=utcnow(),
                        created_by=ctx.identity.name,
                    )
                )
                reseal_pointers(conn, ctx.sealer, row.name)
        ref_text = f"{row.name}:{row.version}"
        ctx.log("registry:unpromote", ref_text, source=row.env, to=back, reason=reason)
        return ref_text, str(row.env), back

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

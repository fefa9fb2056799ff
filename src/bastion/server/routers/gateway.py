"""Attested model release to gateways (issue 11 item 6): ``/v1/gateway/challenge``, ``/v1/gateway/pull``.

A ``gateway``-role identity never gets a model's plaintext from ``/v1/registry/pull``
(:func:`refuse_unattested` refuses it there, audit-logged): it asks for a challenge, signs claims about itself
with its attester key, and the server releases the model only when the evidence passes the model's approved
key-release policy — the same :class:`~bastion.serve.attestation.KeyReleasePolicy` a home-based gateway
passes (trusted attester keys, the approved gateway-configuration digest, allowed package versions, the exact
model digest, a fresh single-use nonce). The gateway policy of a version is the entry ``gateway:NAME@DIGEST``
(its manifest digest: an approval releases that version only, never a later one) of the home's signed
release policy, written by ``bastion serve NAME --approve --gateway-attester PUB.pem``
(admin, on the server's home). Decisions are audit-logged as ``serve:key-release`` by the gateway identity.

Stealing the gateway's token alone therefore yields nothing: the attester key and an approved configuration
are needed too. The software attester is not a hardware root of trust (see :mod:`bastion.serve.attestation`);
an SEV-SNP or Nitro verifier plugs into the same policy.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from bastion.access import allowed
from bastion.errors import AccessDenied, AuthenticationFailed, PolicyViolation
from bastion.server.deps import CallerIdentity, CallerVault, ServerStateDep
from bastion.server.state import TooManyRequests
from bastion.server.tarstream import bytes_member, end_of_archive, tree_members

router = APIRouter()

GATEWAY_ROLE = "gateway"
NONCE_TTL_S = 120.0
MAX_NONCES = 10_000
POLICY_PREFIX = "gateway:"


@dataclass(frozen=True)
class _Challenge:
    identity_id: str
    ref: str  # NAME:VERSION
    model_digest: str
    expires: float


class _Nonces:
    """Single-use challenges, per server process (a restart invalidates the outstanding ones: fail closed)."""

    def __init__(self) -> None:
        self._items: dict[str, _Challenge] = {}
        self._lock = threading.Lock()

    def issue(self, nonce: str, challenge: _Challenge) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, c in self._items.items() if c.expires < now]:
                del self._items[key]
            if len(self._items) >= MAX_NONCES:
                raise PolicyViolation("too many outstanding gateway challenges: retry later")
            self._items[nonce] = challenge

    def take(self, nonce: str, identity_id: str) -> _Challenge | None:
        with self._lock:
            challenge = self._items.pop(nonce, None)
        if challenge is None or challenge.identity_id != identity_id or challenge.expires < time.monotonic():
            return None
        return challenge


_STORES: weakref.WeakKeyDictionary[Any, _Nonces] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def _nonces(state: Any) -> _Nonces:
    with _STORES_LOCK:
        store = _STORES.get(state)
        if store is None:
            store = _STORES[state] = _Nonces()
        return store


def refuse_unattested(vault: Any, ref: str) -> None:
    """The hook of ``/v1/registry/pull``: a gateway identity is refused there (logged), never served."""
    if vault.identity.role != GATEWAY_ROLE:
        return
    reason = (
        "a gateway receives models only through attested release (/v1/gateway/challenge, /v1/gateway/pull)"
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="registry:pull",
        target=ref,
        outcome="denied",
        details={"reason": reason},
    )
    raise PolicyViolation(f"{vault.identity.name} (gateway) may not pull {ref} unattested: {reason}")


def _audit(vault: Any, ref: str, *, released: bool, details: dict[str, Any]) -> None:
    vault.audit.append(
        actor=vault.identity.name,
        action="serve:key-release",
        target=ref,
        outcome="ok" if released else "denied",
        details={**details, "remote": True},
    )


@router.get("/gateway/challenge")
def challenge(state: ServerStateDep, vault: CallerVault, ref: str) -> dict[str, Any]:
    """A fresh nonce bound to the caller and the exact version ``ref`` resolves to (and its digest)."""
    from bastion.serve.attestation import new_nonce
    from bastion.vault import ArtifactRef

    name = ArtifactRef.parse(ref).name
    if not allowed(vault.identity, "registry:pull", model=name):
        vault.access.check(vault.identity, "registry:pull", model=name)  # logs the denial and raises
    version = state.base.show(ref, _log=False)  # resolve as the server (the caller may not read metadata)
    try:
        vault.access.check(vault.identity, "registry:pull", model=version.name, env=version.env)
    except AccessDenied:  # the version's environment is not the gateway's to learn
        who = f"{vault.identity.name} ({vault.identity.role})"
        raise AccessDenied(
            f"{who} may not registry:pull on {name} (not in an environment granted to it)"
        ) from None
    nonce = new_nonce()
    _nonces(state).issue(
        nonce,
        _Challenge(
            identity_id=vault.identity.id,
            ref=version.ref,
            model_digest=version.manifest_digest,
            expires=time.monotonic() + NONCE_TTL_S,
        ),
    )
    return {
        "nonce": nonce,
        "ref": version.ref,
        "model_digest": version.manifest_digest,
        "max_age_s": NONCE_TTL_S,
    }


class EvidenceBody(BaseModel):
    format: str = Field(max_length=64)
    payload: str = Field(max_length=65536)
    signature: str = Field(max_length=4096)


class PullBody(BaseModel):
    nonce: str = Field(min_length=16, max_length=128)
    evidence: EvidenceBody


@router.post("/gateway/pull")
def pull(state: ServerStateDep, vault: CallerVault, body: PullBody) -> StreamingResponse:
    """Evaluate the evidence against the model's approved gateway policy; stream the model if released."""
    from bastion.serve.attestation import (
        SOFTWARE_FORMAT,
        Evidence,
        KeyReleasePolicy,
        SoftwareEvidenceVerifier,
        load_release_policy,
    )
    from bastion.serve.remote import gateway_policy_key
    from bastion.vault import public_key_path

    taken = _nonces(state).take(body.nonce, vault.identity.id)
    if taken is None:
        _audit(vault, "-", released=False, details={"reason": "unknown, expired or reused challenge"})
        raise PolicyViolation("key release denied: unknown, expired or reused challenge")
    ref, name = taken.ref, taken.ref.rpartition(":")[0]
    document = load_release_policy(state.home / "serve", signer=state.base.signer)
    approved = document.models.get(gateway_policy_key(name, taken.model_digest))  # the exact version
    details: dict[str, Any] = {"model_digest": taken.model_digest, "policy_digest": document.digest()}
    if approved is None:
        reason = (
            f"no approved gateway policy for this version of {name} (digest {taken.model_digest[:19]}…): "
            f"an approval releases only the version approved (run 'bastion serve {ref} --approve "
            "--gateway-attester')"
        )
        _audit(vault, ref, released=False, details={**details, "reason": reason})
        raise PolicyViolation(f"key release denied for {ref}: {reason}")
    try:
        evidence = Evidence(
            format=body.evidence.format,
            payload=base64.b64decode(body.evidence.payload, validate=True),
            signature=base64.b64decode(body.evidence.signature, validate=True),
        )
    except (binascii.Error, ValueError):
        _audit(vault, ref, released=False, details={**details, "reason": "malformed evidence"})
        raise PolicyViolation(f"key release denied for {ref}: malformed evidence") from None
    policy = KeyReleasePolicy(
        evidence_formats=(SOFTWARE_FORMAT,),
        expected_model_digest=taken.model_digest,
        expected_config_digest=approved.config_digest,
        allowed_package_versions=approved.package_versions,
        max_age_s=NONCE_TTL_S,
    )
    decision = policy.evaluate(
        evidence=evidence,
        verifiers={SOFTWARE_FORMAT: SoftwareEvidenceVerifier(approved.trusted_keys())},
        nonce=body.nonce,
    )
    reason = decision.reason
    if decision.released and decision.claims is not None and decision.claims.model_ref != ref:
        reason = "evidence names another model version"
    released = decision.released and reason == decision.reason
    claimed = decision.claims.config_digest if decision.claims is not None else None
    _audit(vault, ref, released=released, details={**details, "config_digest": claimed, "reason": reason})
    if not released:
        raise PolicyViolation(f"key release denied for {ref}: {reason}")
    spool = state.new_spool()
    out = spool / "artifact"
    try:
        version = vault.pull(ref, out=out)  # the caller's own check and audit entry, as any pull
        pub = public_key_path(out).read_bytes()
    except BaseException:
        shutil.rmtree(spool, ignore_errors=True)
        raise
    state.mark_released(vault.identity, version.ref)  # its request records may now reach the log
    chunk = state.settings.chunk_bytes

    def stream() -> Any:
        try:
            yield from bytes_member("version.json", json.dumps(version.to_dict()).encode("utf-8"))
            yield from bytes_member("pub.pem", pub)
            yield from tree_members("files", out, chunk=chunk)
            yield end_of_archive()
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    cleanup = BackgroundTask(shutil.rmtree, spool, ignore_errors=True)
    return StreamingResponse(stream(), media_type="application/x-tar", background=cleanup)


class IntrospectBody(BaseModel):
    token: str = Field(min_length=1, max_length=1024)


@router.post("/gateway/introspect")
def introspect(state: ServerStateDep, identity: CallerIdentity, body: IntrospectBody) -> dict[str, Any]:
    """Who a gateway's caller is (gateway identities only): the token is checked against its sealed rows on
    every call, so a revocation holds within the gateway's token cache time.

    The answer is given only for a caller who holds ``model:infer`` on a model this gateway is granted;
    any other token — unknown, revoked, an admin's, or valid but not one of this gateway's callers — gets
    the same 401, so a gateway credential is no oracle for other tokens. Failures are limited per
    gateway identity (429 past it, before any lookup) and audit-logged in aggregate
    (:class:`~bastion.server.state.FailureLog`)."""
    if identity.role != GATEWAY_ROLE:
        raise AccessDenied(f"{identity.name} ({identity.role}) may not check other callers' tokens")
    source = f"gateway:{identity.name}"
    decision = state.introspect_limits.address(identity.id)
    if not decision.allowed:
        state.introspect_failures.failed(source)
        raise TooManyRequests(
            "too many failed token checks by this gateway", retry_after_s=decision.retry_after_s
        )
    state.introspect_failures.flush()
    try:
        caller = state.check_token(body.token)
        if caller.role == "admin" or not any(
            allowed(caller, "model:infer", model=m) for m in _gateway_models(state, identity)
        ):  # an admin's token is never confirmed to a gateway: a compromised pod could test stolen ones
            raise AuthenticationFailed("invalid credentials")
    except AuthenticationFailed:
        state.introspect_limits.auth_failure(identity.id)
        state.introspect_failures.failed(source)
        raise AuthenticationFailed("invalid credentials") from None
    return dict(caller.to_dict())


def _gateway_models(state: Any, gateway: Any) -> list[str]:
    """The model names ``gateway`` may be released: its literal grants and every registered model its
    globs match."""
    import sqlalchemy as sa

    from bastion.store.tables import artifacts

    with state.base.engine.connect() as conn:
        names = [r.name for r in conn.execute(sa.select(artifacts.c.name).where(artifacts.c.kind == "model"))]
    literal = [m for m in gateway.models if not set(m) & set("*?[")]
    return [m for m in dict.fromkeys([*literal, *names]) if allowed(gateway, "registry:pull", model=m)]


__all__ = ["POLICY_PREFIX", "refuse_unattested", "router"]

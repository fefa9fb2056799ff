"""A gateway's attested pull from a ``bastion server`` (``/v1/gateway/challenge`` then ``/v1/gateway/pull``).

``attest`` turns the server's challenge (nonce, the exact version and its manifest digest) into evidence
(:func:`bastion.serve.remote.gateway_evidence` signs claims with the gateway's attester key). The model then
streams as a pull does, and arrives the same way: staged privately inside ``out``, every file's size and
SHA-256 checked against the version's signed digests, ``OUT.pub.pem`` beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from bastion.client import _decode as D
from bastion.client._http import STREAM_TIMEOUT, ResponseReader, raise_for
from bastion.client._staging import PULL_META, install_pulled, pull_staging
from bastion.errors import IntegrityError, ServiceError
from bastion.server.tarstream import CHUNK, extract_stream
from bastion.vault import ArtifactVersion

Attest = Callable[[Mapping[str, Any]], Mapping[str, str]]


def attested_pull(vault: Any, ref: str, *, out: str | os.PathLike[str], attest: Attest) -> ArtifactVersion:
    """Challenge, attest, and pull ``ref`` into ``out`` (PolicyViolation when the server denies release)."""
    t = getattr(vault, "_t", None)
    if t is None:
        raise ServiceError("not a remote vault")
    challenge = t.call("GET", "/gateway/challenge", params={"ref": str(ref)})
    if not isinstance(challenge, dict) or not isinstance(challenge.get("nonce"), str):
        raise ServiceError("the server sent a malformed challenge")
    body = {"nonce": challenge["nonce"], "evidence": dict(attest(challenge))}
    with pull_staging(out) as (target, stage):
        with (
            t._errors(),
            t._client.stream("POST", "/gateway/pull", json=body, timeout=STREAM_TIMEOUT) as resp,
        ):
            if not resp.is_success:
                resp.read()
                raise_for(resp)
            got = extract_stream(
                ResponseReader(resp, CHUNK),
                stage,
                meta_names=PULL_META,
                max_bytes=1 << 50,
                max_files=1 << 20,
            )
        version = D.artifact_version(json.loads(got.meta["version.json"]))
        if version.ref != challenge.get("ref") or version.manifest_digest != challenge.get("model_digest"):
            raise IntegrityError(f"{version.ref}: the server released another version than it attested")
        install_pulled(version, got.files, got.meta["pub.pem"], stage=stage, target=target)
    return version


def introspect(vault: Any, token: str) -> Any:
    """The identity a gateway caller's ``token`` names, asked with the gateway's own credential
    (AuthenticationFailed when it names none)."""
    t = getattr(vault, "_t", None)
    if t is None:
        raise ServiceError("not a remote vault")
    return D.identity(t.call("POST", "/gateway/introspect", json={"token": token}))


def response_state(vault: Any) -> dict[str, Any]:
    """The server's signed response state (``GET /v1/respond/state``), unverified: the caller
    (:class:`bastion.respond.gate.RemoteResponseGate`) checks its signature with the key it pins."""
    t = getattr(vault, "_t", None)
    if t is None:
        raise ServiceError("not a remote vault")
    answer = t.call("GET", "/respond/state")
    if not isinstance(answer, dict):
        raise ServiceError("the server sent a malformed response state")
    return answer


class RemoteAuditSink:
    """An :class:`~bastion.store.interface.AuditSink` for a gateway without a home: each append (one batch of
    request records, or one security event, from the gateway's batched writer) goes to the server's audit
    log (``POST /v1/gateway/audit``), written there under the gateway's identity. Raises on failure, so the
    writer keeps the batch and applies its ``on_failure`` policy as with a local log."""

    def __init__(self, vault: Any) -> None:
        t = getattr(vault, "_t", None)
        if t is None:
            raise ServiceError("not a remote vault")
        self._t = t

    def append(
        self, *, actor: str, action: str, target: str, outcome: str, details: Mapping[str, Any] | None = None
    ) -> Any:
        entry = {"action": action, "target": target, "outcome": outcome, "details": dict(details or {})}
        return self._t.call("POST", "/gateway/audit", json={"entries": [entry]})


__all__ = ["RemoteAuditSink", "attested_pull", "introspect", "response_state"]

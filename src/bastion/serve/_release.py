"""Key release for ``bastion serve`` (start-up step 2 of :mod:`bastion.serve.server`).

:func:`approve_release` (admin, ``bastion serve MODEL --approve``) enrols this home's software attester and
signs the model's release policy; :func:`release_key` attests this process, evaluates the *approved* policy
(not the running configuration) and audit-logs the decision before the data key is ever unwrapped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bastion import __version__
from bastion.access import allowed
from bastion.errors import AccessDenied, PolicyViolation
from bastion.serve.attestation import (
    ATTESTER_KEY_FILE,
    SOFTWARE_FORMAT,
    Claims,
    KeyReleasePolicy,
    ModelReleasePolicy,
    ReleasePolicyDocument,
    SoftwareEvidenceVerifier,
    attester_public_hex,
    create_software_attester,
    load_release_policy,
    new_nonce,
    open_software_attester,
    save_release_policy,
)
from bastion.serve.config import GatewayConfig

SERVE_DIR = "serve"


def approve_release(
    *, vault: Any, model_name: str, config: GatewayConfig, files: Mapping[str, str] | None = None
) -> ModelReleasePolicy:
    """Approve ``config`` for ``model_name``'s key release (admin): enrol this home's attester (sealed under
    the key ring; created on first approval) and sign the policy with the home's signing key."""
    if not allowed(vault.identity, "serve:admin"):
        raise AccessDenied(f"{vault.identity.name} ({vault.identity.role}) may not approve a gateway")
    directory = vault.settings.home / SERVE_DIR
    if (directory / ATTESTER_KEY_FILE).exists():
        attester = open_software_attester(directory, keys=vault.keys)
    else:
        attester = create_software_attester(directory, keys=vault.keys)
    document = load_release_policy(directory, signer=vault.signer)
    entry = ModelReleasePolicy(
        attesters=(attester_public_hex(attester),),
        config_digest=config.digest(files),
        package_versions=tuple(config.key_release.allowed_package_versions) or (__version__,),
        approved_by=vault.identity.name,
        approved_at=time.time(),
    )
    updated = ReleasePolicyDocument(models={**document.models, model_name: entry})
    save_release_policy(directory, updated, signer=vault.signer)
    vault.audit.append(
        actor=vault.identity.name,
        action="serve:approve-release",
        target=model_name,
        outcome="ok",
        details={
            "config_digest": entry.config_digest,
            "package_versions": list(entry.package_versions),
            "attesters": list(entry.attesters),
            "policy_digest": updated.digest(),
        },
    )
    return entry


def release_key(
    *,
    vault: Any,
    version: Any,
    config: GatewayConfig,
    passphrase: str | None = None,
    files: Mapping[str, str] | None = None,
) -> None:
    """Attest, evaluate the approved key-release policy, audit-log the decision; PolicyViolation on denial.
    ``files``: the fingerprints of the trust files as read for this start (bound into the config digest)."""
    del passphrase  # the attester key is sealed under the key ring the vault already opened
    directory = vault.settings.home / SERVE_DIR
    document = load_release_policy(directory, signer=vault.signer)
    approved = document.models.get(str(version.name))
    running_digest = config.digest(files)
    details: dict[str, Any] = {
        "model_digest": version.manifest_digest,
        "config_digest": running_digest,
        "policy_digest": document.digest(),
    }
    if approved is None:
        reason = f"no approved key-release policy for {version.name} (run 'bastion serve MODEL --approve')"
        _audit_release(vault, version, released=False, details={**details, "reason": reason})
        raise PolicyViolation(f"key release denied for {version.ref}: {reason}")
    attester = open_software_attester(directory, keys=vault.keys)
    nonce = new_nonce()
    claims = Claims(
        package_version=__version__,
        config_digest=running_digest,
        model_digest=version.manifest_digest,
        model_ref=version.ref,
        nonce=nonce,
        issued_at=time.time(),
    )
    evidence = attester.attest(claims)
    policy = KeyReleasePolicy(
        evidence_formats=tuple(config.key_release.evidence_formats),
        expected_model_digest=version.manifest_digest,
        expected_config_digest=approved.config_digest,
        allowed_package_versions=approved.package_versions,
        max_age_s=float(config.key_release.max_evidence_age_s),
    )
    decision = policy.evaluate(
        evidence=evidence,
        verifiers={SOFTWARE_FORMAT: SoftwareEvidenceVerifier(approved.trusted_keys())},
        nonce=nonce,
    )
    details.update(reason=decision.reason, format=evidence.format)
    _audit_release(vault, version, released=decision.released, details=details)
    if not decision.released:
        raise PolicyViolation(f"key release denied for {version.ref}: {decision.reason}")


def _audit_release(vault: Any, version: Any, *, released: bool, details: dict[str, Any]) -> None:
    vault.audit.append(
        actor=vault.identity.name,
        action="serve:key-release",
        target=version.ref,
        outcome="ok" if released else "denied",
        details=details,
    )


__all__ = ["SERVE_DIR", "approve_release", "release_key"]

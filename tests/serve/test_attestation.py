from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.errors import ConfigError, IntegrityError
from bastion.serve.attestation import (
    SOFTWARE_FORMAT,
    Claims,
    Evidence,
    KeyReleasePolicy,
    SoftwareAttester,
    SoftwareEvidenceVerifier,
    create_software_attester,
    open_software_attester,
)

NOW = 1_800_000_000.0


def _claims(**kw: object) -> Claims:
    base = {
        "package_version": "0.1.0",
        "config_digest": "c" * 64,
        "model_digest": "m" * 64,
        "model_ref": "digits:1",
        "nonce": "n1",
        "issued_at": NOW,
    }
    base.update(kw)
    return Claims(**base)  # type: ignore[arg-type]


def _policy(**kw: object) -> KeyReleasePolicy:
    base = {
        "evidence_formats": (SOFTWARE_FORMAT,),
        "expected_model_digest": "m" * 64,
        "expected_config_digest": "c" * 64,
        "allowed_package_versions": ("0.1.0",),
        "max_age_s": 60.0,
    }
    base.update(kw)
    return KeyReleasePolicy(**base)  # type: ignore[arg-type]


@pytest.fixture
def attester() -> SoftwareAttester:
    return SoftwareAttester(Ed25519PrivateKey.generate())


def _evaluate(attester: SoftwareAttester, claims: Claims, *, nonce: str = "n1", trusted=None, policy=None):
    verifier = SoftwareEvidenceVerifier(trusted or [attester.public_key()])
    return (policy or _policy()).evaluate(
        evidence=attester.attest(claims),
        verifiers={SOFTWARE_FORMAT: verifier},
        nonce=nonce,
        now=lambda: NOW + 1,
    )


def test_matching_evidence_releases_the_key(attester: SoftwareAttester) -> None:
    decision = _evaluate(attester, _claims())
    assert decision.released and decision.claims == _claims()


@pytest.mark.parametrize(
    ("claims", "nonce", "reason"),
    [
        (_claims(model_digest="x" * 64), "n1", "model digest"),
        (_claims(config_digest="x" * 64), "n1", "configuration digest"),
        (_claims(package_version="6.6.6"), "n1", "package version"),
        (_claims(), "other-nonce", "nonce"),
        (_claims(issued_at=NOW - 3600), "n1", "stale"),
        (_claims(issued_at=NOW + 3600), "n1", "stale"),
    ],
)
def test_mismatching_claims_are_denied(
    attester: SoftwareAttester, claims: Claims, nonce: str, reason: str
) -> None:
    decision = _evaluate(attester, claims, nonce=nonce)
    assert not decision.released and reason in decision.reason


def test_untrusted_or_forged_evidence_is_denied(attester: SoftwareAttester) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    assert not _evaluate(attester, _claims(), trusted=[other]).released
    evidence = attester.attest(_claims())
    forged = dataclasses.replace(evidence, payload=_claims(model_digest="x" * 64).canonical())
    with pytest.raises(IntegrityError):
        SoftwareEvidenceVerifier([attester.public_key()]).verify(forged)
    unknown = Evidence(format="aws-nitro-v1", payload=b"{}", signature=b"")
    decision = _policy().evaluate(
        evidence=unknown,
        verifiers={SOFTWARE_FORMAT: SoftwareEvidenceVerifier([attester.public_key()])},
        nonce="n1",
    )
    assert not decision.released and "not accepted" in decision.reason


def test_policies_fail_closed() -> None:
    with pytest.raises(ConfigError):
        _policy(evidence_formats=())
    with pytest.raises(ConfigError):
        _policy(allowed_package_versions=())
    with pytest.raises(ConfigError):
        SoftwareEvidenceVerifier([])


def test_attester_key_is_sealed_under_the_key_ring(project, tmp_path: Path) -> None:
    """Not a PEM under the raw passphrase (PBKDF2, 2048 iterations): the key ring's Argon2id-derived KEK
    wraps it, so a stolen home gives no faster passphrase guess than the key ring itself."""
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    created = create_software_attester(tmp_path, keys=project.vault.keys)
    opened = open_software_attester(tmp_path, keys=project.vault.keys)
    assert created.public_key().public_bytes_raw() == opened.public_key().public_bytes_raw()
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["attester_ed25519.sealed.json"]
    blob = files[0].read_bytes()
    assert b"PRIVATE KEY" not in blob and b'"wrapped"' in blob
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigError):
        create_software_attester(tmp_path, keys=project.vault.keys)  # never overwritten
    other = init_project(
        home=tmp_path / "other-home", passphrase="another passphrase here", kdf=KdfParams.unsafe_fast()
    )
    try:
        with pytest.raises(IntegrityError):
            open_software_attester(tmp_path, keys=other.keys)  # another key ring cannot open it
    finally:
        other.close()
    files[0].write_bytes(blob.replace(b'"ciphertext": "', b'"ciphertext": "AAAA', 1))
    with pytest.raises(IntegrityError):
        open_software_attester(tmp_path, keys=project.vault.keys)

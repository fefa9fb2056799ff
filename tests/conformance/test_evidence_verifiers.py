"""The evidence-verifier contract (:class:`bastion.serve.interface.EvidenceVerifier`), run for every verifier
of key-release evidence. Each implementation registers a case below: its verifier, trusting one attester, and
a way to produce genuine evidence (a Nitro or SEV-SNP verifier adds its own case with recorded documents).

The contract: genuine evidence of the verifier's format gives back exactly the attested claims; anything else
(another format, an untrusted attester, a flipped bit in payload or signature, a signed but malformed payload)
raises ``IntegrityError`` with one and the same message, so a failure says nothing about why."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.errors import ConfigError, IntegrityError
from bastion.serve.attestation import Claims, Evidence, SoftwareAttester, SoftwareEvidenceVerifier
from bastion.serve.interface import EvidenceVerifier

CLAIMS = Claims(
    package_version="0.1.0",
    config_digest="c" * 64,
    model_digest="m" * 64,
    model_ref="digits:1",
    nonce="n0nce",
    issued_at=1_700_000_000.0,
)


@dataclass(frozen=True)
class Case:
    verifier: EvidenceVerifier
    attest: Callable[[Claims], Evidence]  # a trusted attester
    forge: Callable[[Claims], Evidence]  # the same format from an attester the verifier does not trust
    sign_raw: Callable[[bytes], Evidence]  # trusted signature over arbitrary payload bytes


def _software() -> Case:
    trusted, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    attester = SoftwareAttester(trusted)
    verifier = SoftwareEvidenceVerifier([trusted.public_key()])
    return Case(
        verifier=verifier,
        attest=attester.attest,
        forge=SoftwareAttester(other).attest,
        sign_raw=lambda payload: Evidence(
            format=verifier.format, payload=payload, signature=trusted.sign(payload)
        ),
    )


CASES: dict[str, Callable[[], Case]] = {"software": _software}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]()


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_genuine_evidence_gives_back_the_attested_claims(case: Case) -> None:
    evidence = case.attest(CLAIMS)
    assert evidence.format == case.verifier.format
    assert case.verifier.verify(evidence) == CLAIMS
    fresh = dataclasses.replace(CLAIMS, nonce="another")
    assert case.verifier.verify(case.attest(fresh)) == fresh


def test_every_failure_is_the_same_opaque_integrity_error(case: Case) -> None:
    good = case.attest(CLAIMS)
    bad = {
        "other format": dataclasses.replace(good, format=good.format + "-x"),
        "untrusted attester": case.forge(CLAIMS),
        "payload bit": dataclasses.replace(good, payload=_flip(good.payload, 5)),
        "signature bit": dataclasses.replace(good, signature=_flip(good.signature)),
        "empty signature": dataclasses.replace(good, signature=b""),
        "signed garbage": case.sign_raw(b"not json"),
        "signed wrong claims": case.sign_raw(b'{"package_version": "0.1.0"}'),
    }
    messages = set()
    for name, evidence in bad.items():
        with pytest.raises(IntegrityError) as info:
            case.verifier.verify(evidence)
        messages.add(str(info.value))
        assert "\n" not in str(info.value), name
    assert len(messages) == 1, messages  # the answer does not say which check failed


def test_a_verifier_that_trusts_nobody_is_refused() -> None:
    with pytest.raises(ConfigError):
        SoftwareEvidenceVerifier([])

"""Entity types, classification labels and the default control for each label."""

from __future__ import annotations

import enum

# Entity names follow Presidio's where Presidio has one, so results compare one to one.
EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN_CODE"
US_SSN = "US_SSN"
IP_ADDRESS = "IP_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
PERSON = "PERSON"
STREET_ADDRESS = "STREET_ADDRESS"
NATIONAL_ID = "NATIONAL_ID"  # national identity / tax / social-insurance numbers (with check digits)
PASSPORT = "PASSPORT"
DRIVER_LICENSE = "DRIVER_LICENSE"
MAC_ADDRESS = "MAC_ADDRESS"
SECRET = "SECRET"  # noqa: S105 - an entity name. API keys, tokens, passwords, private keys
# Quasi-identifiers: not identifying alone, identifying in combination.
ZIP_CODE = "ZIP_CODE"
AGE = "AGE"
GENDER = "GENDER"
DATE = "DATE"

PII_ENTITIES: frozenset[str] = frozenset(
    {
        EMAIL,
        PHONE,
        CREDIT_CARD,
        IBAN,
        US_SSN,
        IP_ADDRESS,
        DATE_OF_BIRTH,
        PERSON,
        STREET_ADDRESS,
        NATIONAL_ID,
        PASSPORT,
        DRIVER_LICENSE,
        MAC_ADDRESS,
    }
)
# Presidio entities run through its own recognizers (see bastion.data.presidio) that count as PII.
PRESIDIO_PII_ENTITIES: frozenset[str] = frozenset({"CRYPTO", "UK_NHS", "MEDICAL_LICENSE"})
SECRET_ENTITIES: frozenset[str] = frozenset({SECRET})
QUASI_IDENTIFIERS: frozenset[str] = frozenset({ZIP_CODE, AGE, GENDER, DATE, DATE_OF_BIRTH})


class Label(enum.StrEnum):
    """Classification label of a column or a file, in increasing order of sensitivity."""

    public = "public"
    internal = "internal"
    confidential = "confidential"
    pii = "pii"
    secret = "secret"  # noqa: S105 - a label

    @property
    def rank(self) -> int:
        return list(Label).index(self)


class Action(enum.StrEnum):
    """A per-column control applied by ``protect``."""

    keep = "keep"
    tokenize = "tokenize"  # AES-SIV deterministic token, reversible with the data key
    fpe = "fpe"  # FF1 format-preserving encryption of the digits
    mask = "mask"
    redact = "redact"
    hash = "hash"  # keyed HMAC-SHA256
    generalize = "generalize"
    drop = "drop"


def max_label(labels: list[Label] | tuple[Label, ...]) -> Label:
    return max(labels, key=lambda lab: lab.rank) if labels else Label.internal


def entity_label(entity: str) -> Label:
    if entity in SECRET_ENTITIES:
        return Label.secret
    if entity in PII_ENTITIES or entity in PRESIDIO_PII_ENTITIES:
        return Label.pii
    if entity in QUASI_IDENTIFIERS:
        return Label.confidential
    return Label.internal


__all__ = [
    "AGE",
    "CREDIT_CARD",
    "DATE",
    "DATE_OF_BIRTH",
    "DRIVER_LICENSE",
    "EMAIL",
    "GENDER",
    "IBAN",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "NATIONAL_ID",
    "PASSPORT",
    "PERSON",
    "PHONE",
    "PII_ENTITIES",
    "QUASI_IDENTIFIERS",
    "SECRET",
    "SECRET_ENTITIES",
    "STREET_ADDRESS",
    "US_SSN",
    "ZIP_CODE",
    "Action",
    "Label",
    "entity_label",
    "max_label",
]

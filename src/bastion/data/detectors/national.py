"""National identifiers (check digits via python-stdnum), US SSNs, passports and driving licences.

The formats, their validators and their context rules live in :mod:`bastion.data._national`; this module
turns each format into a detector: *strong* formats are patterns with a validator, *weak* ones (bare digit
runs) a finder that needs a keyword nearby.
"""

from __future__ import annotations

import re

from bastion.data import entities as E
from bastion.data._national import FORMATS as ID_FORMATS
from bastion.data._national import context_finder, id_validator
from bastion.data.detectors._common import NEVER, whole
from bastion.data.detectors.interface import Detector, Family


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _v_ssn(m: re.Match[str]) -> tuple[int, int] | None:
    return whole(m) if ssn_valid(m.group()[:3], m.group(3), m.group(4)) else None


US_SSN = Detector(E.US_SSN, re.compile(r"\d(?<![\d-]\d)(\d\d)([- ])(\d\d)\2(\d{4})(?![\d-])"), 0.85, _v_ssn)

ID_DETECTORS: tuple[Detector, ...] = tuple(
    Detector(f.entity, f.pattern, 0.85, id_validator(f), source=f"id:{f.name}")
    if f.context is None
    else Detector(f.entity, NEVER, 0.85, source=f"id:{f.name}", finder=context_finder(f), needs=f.pattern)
    for f in ID_FORMATS
)

SSN_FAMILY = Family(
    name="us_ssn",
    entities=frozenset({E.US_SSN}),
    members=(US_SSN,),
    positives=(("SSN 536-90-4399 on file", "536-90-4399"),),
    negatives=("000-12-3456", "666-45-6789", "536-00-4399", "phone 555-123-4567", "2024-03-01"),
)
NATIONAL_FAMILY = Family(
    name="national_ids",
    entities=frozenset({E.NATIONAL_ID, E.PASSPORT, E.DRIVER_LICENSE}),
    members=ID_DETECTORS,
    positives=(
        ("NINO AB 12 34 56 C", "AB 12 34 56 C"),
        ("CPF 111.444.777-35", "111.444.777-35"),
        ("DNI 12345678Z", "12345678Z"),
        ("codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        ("BSN 111222333", "111222333"),
        ("Aadhaar: 2345 6789 0124", "2345 6789 0124"),
        ("passport no. 533401372", "533401372"),
    ),
    negatives=(
        "order 111222333 shipped",
        "ISBN 978-3-16-148410-0",
        "SKU RSSMRA85T10A562X",
        "version 12.34.56",
        "invoice 12345678 total 12.50",
    ),
)

__all__ = ["ID_DETECTORS", "NATIONAL_FAMILY", "SSN_FAMILY", "US_SSN", "ssn_valid"]

"""Telephone numbers of many countries: a loose candidate pattern, ``phonenumbers`` confirms the winners.

The validator (:func:`bastion.data._phones.validate_phone`) applies the cheap rules (boundaries, keywords
for unformatted digit runs, dates, ISBNs, versions); the libphonenumber check (:func:`confirm_phone`) runs
only on candidates that survive overlap resolution (``DEFERRED``; see :func:`~.engine.finalize`).
"""

from __future__ import annotations

from bastion.data import entities as E
from bastion.data._phones import PHONE_CANDIDATE, confirm_phone, validate_phone
from bastion.data.detectors._common import DEFERRED
from bastion.data.detectors.interface import Detector, Family

PHONE = Detector(E.PHONE, PHONE_CANDIDATE, 0.8, validate_phone, source=DEFERRED, confirm=confirm_phone)

FAMILY = Family(
    name="phones",
    entities=frozenset({E.PHONE}),
    members=(PHONE,),
    positives=(
        ("call +44 20 7946 0958 tomorrow", "+44 20 7946 0958"),
        ("Tel. 030 901820 (Berlin)", "030 901820"),
        ("(212) 555-0187", "(212) 555-0187"),
        ("mobile 06 12 34 56 78", "06 12 34 56 78"),
    ),
    negatives=(
        "ISBN 978-3-16-148410-0",
        "2024-03-01",
        "version 10.0.19041.1",
        "lat 48.8566014",
        "total 1234.56",
    ),
)

__all__ = ["FAMILY", "PHONE"]

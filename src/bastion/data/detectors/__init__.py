"""PII detectors: one module per family, a registry where new families plug in, and the chunk engine.

Layout (one job per module):

* :mod:`.interface` — :class:`Detector`, :class:`Span`, the :class:`DetectorFamily` protocol and its contract;
* :mod:`.registry` — :func:`register` / :func:`unregister` / :func:`families` / :func:`all_detectors`;
* one module per family: :mod:`.secrets`, :mod:`.email`, :mod:`.financial` (IBAN, cards), :mod:`.national`
  (US SSN; national ids, passports, driving licences), :mod:`.network` (IP, MAC), :mod:`.phones`,
  :mod:`.dates`, :mod:`.addresses`, :mod:`.names`, :mod:`.presidio_lift` (Presidio's extra recognizers);
* :mod:`.engine` — running detectors over a text, overlap resolution, :func:`detect_text`;
* :mod:`.context` — column-name hints and value-distribution tests;
* :mod:`.columns` — :func:`detect_values` over a column chunk (sample-and-confirm, column context).

The names that ``bastion.data.detectors`` exported before the split are exported here unchanged.
"""

from __future__ import annotations

from bastion.data._dates import date_valid
from bastion.data.detectors import (
    addresses,
    dates,
    email,
    financial,
    names,
    national,
    network,
    phones,
    presidio_lift,
    secrets,
)
from bastion.data.detectors._common import PROTECTED_PREFIXES, SEP
from bastion.data.detectors.columns import ColumnHits, EntityHits, detect_values
from bastion.data.detectors.context import column_hints, looks_like_names, masked_shape
from bastion.data.detectors.engine import PRIORITY, detect_text, finalize, resolve_overlaps
from bastion.data.detectors.financial import IBAN_LENGTHS, iban_valid
from bastion.data.detectors.interface import Detector, DetectorFamily, Family, Span
from bastion.data.detectors.names import name_lists
from bastion.data.detectors.national import ssn_valid
from bastion.data.detectors.registry import all_detectors, families, family, register, unregister

BUILTIN_FAMILIES: tuple[DetectorFamily, ...] = (
    secrets.FAMILY,
    email.FAMILY,
    financial.IBAN_FAMILY,
    financial.CARD_FAMILY,
    national.SSN_FAMILY,
    network.IP_FAMILY,
    phones.FAMILY,
    dates.FAMILY,
    network.MAC_FAMILY,
    national.NATIONAL_FAMILY,
    addresses.FAMILY,
    names.FAMILY,
    presidio_lift.FAMILY,
)
for _family in BUILTIN_FAMILIES:
    register(_family)

# bastion's own detectors (every built-in family but the lifted Presidio one), as before the split.
DETECTORS: tuple[Detector, ...] = tuple(
    d for f in BUILTIN_FAMILIES if f.name != presidio_lift.NAME for d in f.detectors()
)

__all__ = [
    "BUILTIN_FAMILIES",
    "DETECTORS",
    "IBAN_LENGTHS",
    "PRIORITY",
    "PROTECTED_PREFIXES",
    "SEP",
    "ColumnHits",
    "Detector",
    "DetectorFamily",
    "EntityHits",
    "Family",
    "Span",
    "all_detectors",
    "column_hints",
    "date_valid",
    "detect_text",
    "detect_values",
    "families",
    "family",
    "finalize",
    "iban_valid",
    "looks_like_names",
    "masked_shape",
    "name_lists",
    "register",
    "resolve_overlaps",
    "ssn_valid",
    "unregister",
]

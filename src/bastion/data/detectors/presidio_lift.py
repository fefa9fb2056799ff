"""Presidio's pattern recognizers for entities bastion's own families do not cover, lifted into detectors.

See :func:`bastion.data.presidio.presidio_detectors`: crypto wallets, UK NHS numbers, medical licences, run
with Presidio's own regexes and validators. Empty when Presidio is not installed.
"""

from __future__ import annotations

from bastion.data.detectors.interface import Detector, Family

NAME = "presidio"


def _load() -> tuple[Detector, ...]:
    from bastion.data.presidio import presidio_detectors

    return tuple(presidio_detectors())


FAMILY = Family(
    name=NAME,
    entities=frozenset({"CRYPTO", "UK_NHS", "MEDICAL_LICENSE"}),
    loader=_load,
    positives=(("NHS number 943 476 5919", "943 476 5919"),),
    negatives=("NHS number 943 476 5918",),
)

__all__ = ["FAMILY", "NAME"]

"""Street addresses of several countries, single-line and multi-line (shipping labels), in text and cells.

The patterns and the line-extension rules live in :mod:`bastion.data._address`.
"""

from __future__ import annotations

from bastion.data import entities as E
from bastion.data._address import STREET_LINE, address_spans
from bastion.data.detectors.interface import Detector, Family


def _address_finder(text: str) -> list[tuple[int, int, float]]:
    return [(a, b, 0.8) for a, b in address_spans(text)]


ADDRESS = Detector(E.STREET_ADDRESS, STREET_LINE, 0.8, finder=_address_finder, needs=STREET_LINE)

FAMILY = Family(
    name="addresses",
    entities=frozenset({E.STREET_ADDRESS}),
    members=(ADDRESS,),
    positives=(
        ("ship to 221B Baker Street, London NW1 6XE", "221B Baker Street"),
        ("Hauptstraße 5, 10115 Berlin", "Hauptstraße 5"),
        ("12 rue de la Paix, 75002 Paris", "12 rue de la Paix"),
    ),
    negatives=("version 2.3.1 released", "we shipped 12 boxes", "Street Fighter II"),
)

__all__ = ["ADDRESS", "FAMILY"]

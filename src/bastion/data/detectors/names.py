"""Personal names of many cultures (lexicon, titles, context words, capitalisation; see ``data._names``)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from bastion.data import entities as E
from bastion.data._names import person_spans
from bastion.data.detectors._common import NEVER
from bastion.data.detectors.interface import Detector, Family


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """The shipped given-name and surname lists (``names.txt``)."""
    first: set[str] = set()
    last: set[str] = set()
    text = resources.files("bastion.data").joinpath("names.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("F "):
            first.add(line[2:].strip())
        elif line.startswith("L "):
            last.add(line[2:].strip())
    return frozenset(first), frozenset(last)


PERSON = Detector(E.PERSON, NEVER, 0.75, source="names", finder=person_spans)

FAMILY = Family(
    name="names",
    entities=frozenset({E.PERSON}),
    members=(PERSON,),
    positives=(
        ("Dear Siobhán O'Brien-Kowalski, thank you", "Siobhán O'Brien-Kowalski"),
        ("Customer Jean-Luc van der Berg called twice", "Jean-Luc van der Berg"),
        ("Dr. Nkechi Adeyemi signed the form", "Nkechi Adeyemi"),
        ("Maria Garcia", "Maria Garcia"),
    ),
    negatives=(
        "Annual General Meeting",
        "Bank Of America",
        "Order Status Update",
        "Premium Leather Wallet",
        "Quarterly Sales Report",
    ),
)

__all__ = ["FAMILY", "PERSON", "name_lists"]

"""The detector plug-in axis: what a detector is, what a family of detectors promises, and the contract.

A :class:`Detector` is one compiled pattern plus an optional validator of each match (or a whole-text
``finder``). Detectors come in families (e-mail, phones, national identifiers, names …), each a
:class:`DetectorFamily`; :mod:`bastion.data.detectors.registry` holds the registered families and builds the
detector tuple that :func:`~bastion.data.detectors.detect_values` and
:func:`~bastion.data.detectors.detect_text` run.

Contract every family is tested against (``tests/data/test_detector_conformance.py``, run for every
registered family):

* each of its ``positives`` (a text and the entity in it) is found by the family's own detectors, with a
  span covering the expected value;
* none of its ``negatives`` yields any of the family's ``entities`` (precision on look-alikes: ISBNs are
  not phones, order numbers are not cards, product names are not people);
* garbage, control characters, mixed scripts, lone surrogates and a 200,000-character cell raise nothing
  and return spans inside the text;
* scanning is linear in the text: a 200,000-character adversarial cell (long runs of the characters its
  patterns repeat) finishes within a generous ceiling (no catastrophic backtracking).

Patterns run over a whole column chunk joined with NUL (``SEP``): no pattern may match across a NUL, and a
validator may look around its match only as far as the previous NUL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

Validator = Callable[[re.Match[str]], tuple[int, int] | list[tuple[int, int]] | None]
Finder = Callable[[str], list[tuple[int, int, float]]]


class Span(NamedTuple):
    """A detected entity at ``[start, end)`` of a text."""

    entity: str
    start: int
    end: int
    confidence: float
    source: str


@dataclass(frozen=True)
class Detector:
    """One compiled pattern and an optional validator over the matched text (or a group of it)."""

    entity: str
    pattern: re.Pattern[str]
    confidence: float
    validate: Validator | None = None
    prefilter: str | None = None  # a character that must occur in the text for the detector to run
    source: str = "pattern"
    # A whole-text finder instead of pattern + validator: (start, end, confidence) per finding.
    finder: Finder | None = None
    # An expensive check run only on the candidates that survive overlap resolution (see ``finalize``).
    confirm: Callable[[str], bool] | None = None
    # For a finder: a pattern that matches (somewhere) in every text the finder finds anything in; lets the
    # engine skip the finder on a chunk where it cannot match (``_gate``). ``None``: the finder always runs.
    needs: re.Pattern[str] | None = None


@runtime_checkable
class DetectorFamily(Protocol):
    """A family of detectors for related entities, with the examples it is tested against."""

    @property
    def name(self) -> str: ...

    @property
    def entities(self) -> frozenset[str]:
        """Every entity its detectors report."""
        ...

    @property
    def positives(self) -> tuple[tuple[str, str], ...]:
        """(text, value) pairs: ``value`` occurs in ``text`` and must be found as one of ``entities``."""
        ...

    @property
    def negatives(self) -> tuple[str, ...]:
        """Texts in which none of ``entities`` may be found (look-alikes, decoys)."""
        ...

    def detectors(self) -> tuple[Detector, ...]:
        """The family's detectors (may be empty when an optional dependency is missing)."""
        ...


@dataclass(frozen=True)
class Family:
    """A :class:`DetectorFamily` from a fixed tuple of detectors, or a loader called on first use."""

    name: str
    entities: frozenset[str]
    members: tuple[Detector, ...] = ()
    positives: tuple[tuple[str, str], ...] = ()
    negatives: tuple[str, ...] = ()
    loader: Callable[[], tuple[Detector, ...]] | None = None

    def detectors(self) -> tuple[Detector, ...]:
        return self.members + (self.loader() if self.loader is not None else ())


__all__ = ["Detector", "DetectorFamily", "Family", "Finder", "Span", "Validator"]

"""Presidio, run fully offline.

Two uses:

* :func:`presidio_detectors` lifts the pattern recognizers of Presidio's default registry for entities that
  bastion's own detectors do not cover (crypto wallets, UK NHS numbers, DEA numbers) into
  :class:`~bastion.data.detectors.interface.Detector` objects, so they run vectorised over whole column
  chunks with Presidio's own regexes and validators (``validate_result`` / ``invalidate_result``).
* :func:`offline_analyzer` builds Presidio's ``AnalyzerEngine`` with the ``NoOpNlpEngine`` (pattern
  recognizers only; no spaCy model is ever downloaded) or, when a spaCy model happens to be installed, with
  that model for PERSON/LOCATION named-entity recognition. The benchmark uses it as the baseline.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

from bastion.errors import DependencyMissing

# Presidio entities lifted into the fast path, with the minimum pattern score kept.
LIFTED_ENTITIES: frozenset[str] = frozenset({"CRYPTO", "UK_NHS", "MEDICAL_LICENSE"})
MIN_PATTERN_SCORE = 0.4


def _offline_tldextract() -> None:
    """Presidio's email recognizer calls tldextract, which tries to download the suffix list: use the
    bundled snapshot instead."""
    try:
        import tldextract.tldextract as tld
    except ImportError:
        return
    if getattr(tld.TLD_EXTRACTOR, "suffix_list_urls", None):
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=())
    logging.getLogger("tldextract").setLevel(logging.ERROR)


def installed_spacy_model() -> str | None:
    """The name of an installed spaCy pipeline package, if any (never downloads one)."""
    try:
        import spacy.util
    except ImportError:
        return None
    models = sorted(spacy.util.get_installed_models())
    return models[0] if models else None


def offline_analyzer(*, use_ner: bool = True) -> Any:
    """Presidio ``AnalyzerEngine`` that never touches the network."""
    _offline_tldextract()
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine
    except ImportError as exc:
        raise DependencyMissing("presidio is not installed", hint="pip install 'bastion-ml[pii]'") from exc
    model = installed_spacy_model() if use_ner else None
    if model is not None:
        engine: Any = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
    else:
        engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def _drop_single_repeats(regex: str) -> str:
    """``X{1}`` is ``X``: drop ``{1}`` outside character classes and escapes. Same matches; a pattern that
    then starts with a character class lets the regex engine skip ahead to it (Presidio's medical-licence
    pattern scans ~6x faster)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            out.append(regex[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            head = "[^" if regex[i + 1 : i + 2] == "^" else "["
            if regex[i + len(head) : i + len(head) + 1] == "]":  # a literal ']' first in the class
                head += "]"
            out.append(head)
            i += len(head)
            continue
        elif regex.startswith("{1}", i) and out:
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _make_validator(recognizer: Any) -> Any:
    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        text = m.group()
        if recognizer.validate_result(text) is False or recognizer.invalidate_result(text) is True:
            return None
        return m.start(), m.end()

    return validate


# Presidio's medical-licence (US DEA) pattern is two letters and seven digits with a 1-in-10 check: part
# numbers, serials (``SN…``), UUIDs and hashes match it by chance. Lifted, it needs whole-token boundaries
# and a context word before it in the same cell (issue 21 F7).
_NEEDS_CONTEXT = frozenset({"MEDICAL_LICENSE"})
_LICENCE_CONTEXT = re.compile(
    r"(?i)\b(?:dea|medical|licen[cs]e|certificate|prescriber|prescribing|physician|practitioner|doctor|"
    r"dr|npi|registration|narcotics?)\b"
)
_CONTEXT_WINDOW = 48


def _with_context(inner: Any) -> Any:
    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        text, start, end = m.string, m.start(), m.end()
        if (start > 0 and (text[start - 1].isalnum() or text[start - 1] in "-_")) or (
            end < len(text) and (text[end].isalnum() or text[end] in "-_")
        ):
            return None
        lo = max(0, start - _CONTEXT_WINDOW)
        cut = text.rfind("\x00", lo, start)
        if _LICENCE_CONTEXT.search(text, cut + 1 if cut >= 0 else lo, start) is None:
            return None
        return inner(m)  # type: ignore[no-any-return]

    return validate


@cache
def presidio_detectors() -> tuple[Any, ...]:
    """Presidio's recognizers for :data:`LIFTED_ENTITIES` as fast detectors (none without Presidio)."""
    from bastion.data.detectors.interface import Detector

    try:
        analyzer = offline_analyzer(use_ner=False)
    except DependencyMissing:
        return ()
    out = []
    for rec in analyzer.registry.get_recognizers("en", all_fields=True):
        entities = set(rec.supported_entities) & LIFTED_ENTITIES
        if not entities or not getattr(rec, "patterns", None):
            continue
        entity = sorted(entities)[0]
        # Presidio compiles with DOTALL|MULTILINE|IGNORECASE by default; keep its case-insensitivity only.
        flags = re.IGNORECASE if rec.global_regex_flags & re.IGNORECASE else 0
        for pat in rec.patterns:
            if pat.score < MIN_PATTERN_SCORE:
                continue
            try:
                compiled = re.compile(_drop_single_repeats(pat.regex), flags)
            except re.error:
                continue
            validator = _make_validator(rec)
            if entity in _NEEDS_CONTEXT:
                validator = _with_context(validator)
            out.append(Detector(entity, compiled, float(pat.score), validator, source="presidio"))
    return tuple(out)


__all__ = ["LIFTED_ENTITIES", "installed_spacy_model", "offline_analyzer", "presidio_detectors"]

"""Value transforms: masking, redaction, generalization, and the keyed ones from :mod:`bastion.data.tokens`.

Generalization follows the usual k-anonymity recodings (Sweeney 2002): dates to month or year, ZIP codes to a
prefix, ages to bands; a value that cannot be read as its kind is suppressed (``*``) rather than kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion.data import entities as E
from bastion.data._dates import parse_date
from bastion.data.entities import Action
from bastion.data.policy import Policy
from bastion.data.tokens import ScopeKeys

SUPPRESSED = "*"
_YEAR_MONTH = re.compile(r"((?:19|20)\d\d)-(0[1-9]|1[0-2])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def mask(value: str, *, keep_last: int = 4, char: str = "*") -> str:
    """Replace every letter and digit but the last ``keep_last`` with ``char``; punctuation stays."""
    alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
    keep = set(alnum[-keep_last:]) if keep_last and len(alnum) > keep_last * 2 else set()
    return "".join(ch if (i in keep or not ch.isalnum()) else char for i, ch in enumerate(value))


def redact(_value: str, *, entity: str | None = None) -> str:
    return f"[{entity}]" if entity else "[REDACTED]"


def generalize_date(value: str, *, granularity: str = "month") -> str:
    parts = parse_date(value)
    if parts is not None:
        year, month, _day = parts
        return str(year) if granularity == "year" else f"{year}-{month:02d}"
    ym = _YEAR_MONTH.fullmatch(value.strip())
    if ym:
        return ym.group(1) if granularity == "year" else ym.group()
    return SUPPRESSED


def generalize_zip(value: str, *, digits: int = 3) -> str:
    v = value.strip()
    if re.fullmatch(r"\d{5}(?:-\d{4})?", v):
        return v[:digits] + "*" * (5 - digits)
    if re.fullmatch(r"[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}", v):  # UK postcode: keep the outward code
        return v.split(" ")[0] if " " in v else v[:-3]
    return SUPPRESSED


def generalize_number(value: str, *, band: int = 10) -> str:
    v = value.strip()
    if not _NUMBER.fullmatch(v):
        return SUPPRESSED
    low = int(float(v) // band) * band
    return f"{low}-{low + band - 1}"


def generalize(value: str, *, entity: str | None, policy: Policy) -> str:
    """Recode a quasi-identifier to a coarser value of the same kind."""
    if entity in (E.DATE, E.DATE_OF_BIRTH):
        return generalize_date(value, granularity=policy.date_granularity)
    if entity == E.ZIP_CODE:
        return generalize_zip(value, digits=policy.zip_digits)
    if entity == E.AGE:
        return generalize_number(value, band=policy.age_band)
    if entity == E.GENDER:
        return value  # already a coarse category
    if _NUMBER.fullmatch(value.strip()):
        return generalize_number(value, band=policy.age_band)
    return SUPPRESSED


def value_transform(
    action: Action, *, entity: str | None, keys: ScopeKeys | None, policy: Policy
) -> Callable[[str], str] | None:
    """The function applied to each non-empty value of a column (``None`` for keep and drop)."""
    if action in (Action.keep, Action.drop):
        return None
    if action in (Action.tokenize, Action.fpe, Action.hash):
        if keys is None:
            raise ValueError("keyed transforms need ScopeKeys")
        return {Action.tokenize: keys.token, Action.fpe: keys.fpe, Action.hash: keys.hmac}[action]
    if action == Action.mask:
        return lambda v: mask(v, keep_last=policy.mask_keep_last)
    if action == Action.redact:
        return lambda v: redact(v, entity=entity)
    return lambda v: generalize(v, entity=entity, policy=policy)


def replace_spans(value: str, spans: list[tuple[int, int, str]], fn: Callable[[str, str], str]) -> str:
    """Replace each (start, end, entity) span of ``value`` with ``fn(text, entity)``."""
    out = []
    pos = 0
    for start, end, entity in sorted(spans):
        if start < pos:
            continue
        out.append(value[pos:start])
        out.append(fn(value[start:end], entity))
        pos = end
    out.append(value[pos:])
    return "".join(out)


# An address is a block of lines: a detected address line pulls in the short lines around it (name, street,
# building, postcode and city, country) up to a blank line or a line that reads as a sentence (issue 21 r5
# F-SPAN: one detected line of a shipping label, the other lines kept verbatim).
BLOCK_LINE_CHARS = 60
BLOCK_LINE_WORDS = 8
_WORD_CHAR = re.compile(r"[^\W_]|['\u2019-](?=[^\W\d_])")


def _sentence(text: str) -> bool:
    """A line that ends like a sentence ("Customer happy.", "New address:"), not like "Rosenheimer Str."."""
    if text[-1] in "!?:":
        return True
    if text[-1] != ".":
        return False
    word = text[:-1].rsplit(None, 1)[-1] if text[:-1].strip() else ""
    return len(word) >= 3 and word.isalpha() and word[0].islower()


def _block_line(line: str) -> bool:
    text = line.strip()
    return 0 < len(text) <= BLOCK_LINE_CHARS and len(text.split()) <= BLOCK_LINE_WORDS and not _sentence(text)


def _whole_words(value: str, start: int, end: int) -> tuple[int, int]:
    """A name or address span never stops inside a word ('…Saint' of 'Saint-Antoine')."""
    while start > 0 and (value[start - 1].isalnum() or value[start - 1] in "'\u2019-"):
        start -= 1
    while end < len(value) and _WORD_CHAR.match(value, end):
        end += 1
    return start, end


def _block(value: str, start: int, end: int) -> tuple[int, int] | None:
    """The run of short lines around ``start:end`` (its own lines included), or ``None`` when the span's
    own line is a sentence (an address inside prose: only the span is replaced)."""
    first = value.rfind("\n", 0, start) + 1
    last = value.find("\n", end)
    last = len(value) if last < 0 else last
    if not all(_block_line(line) or not line.strip() for line in value[first:last].split("\n")):
        return None
    while first > 0:
        prev = value.rfind("\n", 0, first - 1) + 1
        if not _block_line(value[prev : first - 1]):
            break
        first = prev
    while last < len(value):
        nxt = value.find("\n", last + 1)
        nxt = len(value) if nxt < 0 else nxt
        if not _block_line(value[last + 1 : nxt]):
            break
        last = nxt
    return first, last


def widen_spans(value: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Spans of names and addresses widened to whole words; an address (or a name filling its line of a
    multi-line cell, the first line of a label) widened to its block of short lines. Overlapping spans are
    merged; a merged span holding a secret stays a secret (redacted, never tokenized)."""
    if not any(e in (E.STREET_ADDRESS, E.PERSON) for _, _, e in spans):
        return spans
    multi = "\n" in value
    wide: list[tuple[int, int, str]] = []
    for start, end, entity in spans:
        if entity in (E.STREET_ADDRESS, E.PERSON):
            start, end = _whole_words(value, start, end)
            line_start = value.rfind("\n", 0, start) + 1
            line_end = value.find("\n", end)
            fills_line = (
                value[line_start:start].strip() == ""
                and value[end : len(value) if line_end < 0 else line_end].strip() == ""
            )
            if entity == E.STREET_ADDRESS or (multi and fills_line):
                block = _block(value, start, end)
                if block is not None:
                    start, end = block
        wide.append((start, end, entity))
    wide.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, entity in wide:
        if merged and start < merged[-1][1]:
            a, b, e = merged[-1]
            keep = entity if entity in E.SECRET_ENTITIES else e
            merged[-1] = (a, max(b, end), keep)
        else:
            merged.append((start, end, entity))
    return merged


__all__ = [
    "BLOCK_LINE_CHARS",
    "SUPPRESSED",
    "generalize",
    "generalize_date",
    "generalize_number",
    "generalize_zip",
    "mask",
    "redact",
    "replace_spans",
    "value_transform",
    "widen_spans",
]

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


__all__ = [
    "SUPPRESSED",
    "generalize",
    "generalize_date",
    "generalize_number",
    "generalize_zip",
    "mask",
    "redact",
    "replace_spans",
    "value_transform",
]

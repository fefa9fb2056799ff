"""Values split across two adjacent columns (issue 21 r5 F-SPLIT): an SSN as ``843-89`` | ``1560``, an e-mail
as user | domain, an identifier with check digits in two parts. Neither half is an entity by itself, so each
column alone reads as internal and is kept, and the pair rejoins the value.

The test, once per file on the first rows: for each pair of adjacent columns whose cells have the shape of
the two halves of such a value (digit groups | digit groups, e-mail local part | domain), the halves are
joined the ways such values are written (``""``, ``"-"``, ``" "``; ``"@"``) and run through the detectors
(one pass for all joinings); when one joining makes a ``pii``/``secret`` entity of at least half the rows,
both columns are that entity.
Cost: at most ``SAMPLE`` joined cells per candidate pair, and most pairs are no candidate (a price beside a
date, a SKU beside a status).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence

from bastion.data import entities as E
from bastion.data.detectors import detect_values
from bastion.data.detectors.interface import Detector
from bastion.data.entities import Label

SAMPLE = 64
SHARE = 0.5
# Phone numbers are left out: almost any run of 7 to 12 digits is a valid number somewhere, so a postcode
# beside a house number would rejoin into one. The entities kept have check digits or a fixed structure.
NOT_REJOINED = frozenset({E.PHONE})
_DIGITS = re.compile(r"(?=[^\d]*\d)[+(]?[\d ()-]{1,14}")
_LOCAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")


def _fits(values: Sequence[str], shape: re.Pattern[str]) -> bool:
    return sum(1 for v in values if shape.fullmatch(v)) >= 0.8 * len(values)


def _joiners(left: Sequence[str], right: Sequence[str]) -> tuple[str, ...]:
    if _fits(left, _DIGITS) and _fits(right, _DIGITS):
        return ("", "-", " ")
    if _fits(left, _LOCAL) and _fits(right, _DOMAIN):
        return ("@",)
    return ()


def split_entities(
    columns: Sequence[str],
    data: dict[str, list[str]],
    *,
    detectors: Sequence[Detector],
    label_of: Callable[[str], Label],
    skip: Callable[[str], bool],
) -> dict[str, str]:
    """Column -> the entity it holds one half of, for adjacent pairs that rejoin into one (first rows);
    ``skip`` names the columns that are no candidate (those with findings of their own)."""
    found: dict[str, str] = {}
    for a, b in itertools.pairwise(columns):
        if skip(a) or skip(b) or a in found:
            continue
        pairs = [(x, y) for x, y in zip(data.get(a, ()), data.get(b, ()), strict=False) if x and y][:SAMPLE]
        if len(pairs) < 5:
            continue
        left, right = [x for x, _ in pairs], [y for _, y in pairs]
        joiners = _joiners(left, right)
        if not joiners:
            continue
        # Every joining in one detector pass; a finding counts when it covers (nearly) its whole cell.
        joined = [x + joiner + y for joiner in joiners for x, y in pairs]
        hits = detect_values(joined, detectors=detectors)
        whole: Counter[tuple[int, str]] = Counter()
        seen: set[tuple[int, str]] = set()
        for row, start, end, entity in zip(
            hits.span_rows.tolist(),
            hits.span_starts.tolist(),
            hits.span_ends.tolist(),
            hits.span_entities.tolist(),
            strict=True,
        ):
            if (row, entity) not in seen and end - start >= 0.8 * len(joined[row]):
                seen.add((row, entity))
                whole[(row // len(pairs), entity)] += 1
        for (_, entity), n in sorted(whole.items()):
            if (
                entity not in NOT_REJOINED
                and n >= SHARE * len(pairs)
                and label_of(entity).rank >= Label.pii.rank
            ):
                found[a] = found[b] = entity
                break
    return found


__all__ = ["SAMPLE", "split_entities"]

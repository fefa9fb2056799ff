"""Readings of a text's layout: markdown table cells and words broken across lines (issue 16, round 18).

The second cold review of the round-17 readings (attack17y) passed injections cut into the cells of a markdown
table (a row's cells, or one word per row read down a column) and words hyphenated across line breaks
(``instru-\\nctions``): the detector's n-grams see ``|`` between the words, or half-words.
:func:`layout_views` reads a table's rows as one line of words ("table-rows") and its columns read down as
lines ("table-columns"), and the text with its hyphenated line breaks joined ("hyphen-breaks"), each only when
the words it reads read as English (the views' test): a table of names, numbers or code is left alone. One
pass over the lines.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bastion.guard._english import FUNCTION, english

# a row: a line with a cell boundary; a rule: cells of dashes. GitHub's tables need neither the outer pipes
# nor more than one dash a cell (round 29: "Ignore | all | previous" under "---|---|---", or under "|-|-|-|",
# was not read; a head's margin had carried it)
_ROW = re.compile(r"[ \t]*\|?[^|\n]*(?:\|[^|\n]*)+")
_RULE = re.compile(r"[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?")
_RULE_CELL_END = re.compile(r"-:?[ \t]*\|")
_MIN_ROWS = 2
# a word broken by a hyphen at the end of a line, its rest at the start of the next ("instru-\nctions")
# (round 18b: a space before the hyphen, CRLF, a capital after it, the Unicode hyphens U+2010 / U+2011)
_BREAK = re.compile(
    r"-(?:(?<=[A-Za-z]-)|(?<=[A-Za-z][ \t]-))[ \t]*\r?\n[ \t]*([A-Za-z])"
)  # ("-" first: fast)
_HYPHENS = str.maketrans("\u2010\u2011", "--")
_BREAK_ENDS = ("-\n", "- \n", "-\r\n", "\u2010", "\u2011")  # (plain searches first)
_MIN_BREAKS = 2


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _sentence_cells(rows: list[list[str]]) -> bool:
    """Whether the cells of ``rows`` hold a sentence cut into cells rather than a record per row: a fifth of
    them (two at least) are a function word alone ("| and | ignore | all |"), which the fields of a roster, a
    glossary or a settings table ("| Esc | ignore and close |") are not."""
    cells = [c.strip(".,;:!?").lower() for r in rows for c in r if c]
    hits = sum(c in FUNCTION for c in cells)
    return hits >= 2 and hits >= 0.2 * len(cells)


def _tables(lines: list[str]) -> list[tuple[int, int]]:
    """The (first, last + 1) line numbers of each run of table rows, ``_MIN_ROWS`` rows or more."""
    out, start = [], None
    for i, line in enumerate([*lines, ""]):
        if _ROW.fullmatch(line):
            start = i if start is None else start
        else:
            if start is not None and i - start >= _MIN_ROWS:
                out.append((start, i))
            start = None
    return out


def _table_views(text: str) -> list[tuple[str, str]]:
    if "|" not in text or not _RULE_CELL_END.search(text):
        return []  # (no rule: every markdown rule has a dash cell closed by "|", padded or not)
    lines = text.split("\n")
    blocks = _tables(lines)
    if not blocks:
        return []
    rows_out, cols_out = list(lines), list(lines)
    rows_read = cols_read = False
    for a, b in reversed(blocks):  # (from the end: the line numbers before a block stay valid)
        if not any(_RULE.fullmatch(x) for x in lines[a:b]):
            continue  # a markdown table has its "|---|" rule (a grid table of reStructuredText, or lines of
            # shell pipes, are layout)
        rows = [_cells(x) for x in lines[a:b] if not _RULE.fullmatch(x)]
        if len(rows) > 1 and _RULE.fullmatch(lines[a + 1]):
            rows = rows[1:]  # the header row is a column's name, not part of what it says
        flat = [" ".join(c for c in r if c) for r in rows]
        if english("\n".join(flat)) and _sentence_cells(rows):
            rows_out[a:b] = [" ".join(flat)]  # (a sentence may run on from row to row)
            rows_read = True
        width = max(map(len, rows), default=0)
        down = [[r[k] for r in rows if k < len(r) and r[k]] for k in range(width)]
        cols = [" ".join(c) for c in down]
        if len(rows) > 2 and any(english(" ".join(d), 0.5) and _sentence_cells([d]) for d in down):
            cols_out[a:b] = cols
            cols_read = True
    out = [("table-rows", "\n".join(rows_out))] if rows_read else []
    return out + ([("table-columns", "\n".join(cols_out))] if cols_read else [])


@lru_cache(maxsize=8)  # (read by the layout view and the chain of the same text: a string caches its hash)
def unbroken(text: str) -> str | None:
    """``text`` with its words broken by a hyphen across lines joined (two breaks or more); None else."""
    if not any(x in text for x in _BREAK_ENDS):
        return None
    if "\u2010" in text or "\u2011" in text:
        text = text.translate(_HYPHENS)
    found = list(_BREAK.finditer(text))
    if len(found) < _MIN_BREAKS:
        return None
    parts, at = [], 0
    for m in found:
        cut = m.start() - (text[m.start() - 1] in " \t")  # (a space before the hyphen goes too)
        parts += [text[at:cut], m.group(1).lower()]
        at = m.end()
    return "".join(parts) + text[at:]


def _breaks_view(text: str) -> str | None:
    joined = unbroken(text)
    return joined if joined is not None and english(joined) else None


def layout_views(text: str) -> list[tuple[str, str]]:
    """``(name, text)`` per layout reading of ``text`` (see the module doc); ``[]`` for ordinary text."""
    out = _table_views(text)
    view = _breaks_view(text)
    return out + ([("hyphen-breaks", view)] if view is not None else [])


__all__ = ["layout_views", "unbroken"]

"""Line alignment for :mod:`bastion.guard.infer` (template suggestions): how an application's logged
prompts are keyed, grouped, sampled and aligned into literal runs and slots. The threat model and the
figures are in :mod:`bastion.guard.infer`."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from difflib import SequenceMatcher

from bastion.guard.templates import MAX_SLOTS, PromptTemplate

LINE_MIN = 16  # a line shorter than this (a greeting, "Thanks!") does not group prompts
_LINES_MAX = 1_000  # a prompt with more lines is not aligned (quadratic; review F3)


def _lines(text: str) -> list[str]:
    return [s for s in (ln.strip() for ln in text.split("\n")) if len(s) >= LINE_MIN]


# a word that holds a digit (a date, a time, an order or request id, a SKU) or names a month or a weekday: the
# value of an operator's line ("Today's date: 2026-12-07."), not its text; lines are grouped without it
_VALUE = re.compile(
    r"\b\w*\d\w*\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)"
    r"(?:uary|ruary|ch|il|e|y|ust|tember|ober|ember|day|sday|nesday|rsday|urday)?\b",
    re.IGNORECASE,
)


def _key(line: str) -> str:
    """``line`` with its values blanked (:data:`_VALUE`): the lines of one application's prompts on
    different days, or for different orders, share a key and group together; alignment still reads the
    raw lines, so the value becomes a slot."""
    return _VALUE.sub("0", line)


def _sample(members: Sequence[tuple[str, str | None]], k: int) -> list[tuple[str, str | None]]:
    """Up to ``k`` members with distinct texts, taken in turn from each identity (and spread evenly over
    each identity's own texts), so that one account's thousands of prompts cannot fill the aligned sample
    and push the others' shared text out (round 25 review, F5). Deterministic."""
    by: dict[str | None, list[str]] = defaultdict(list)
    for text, ident in members:
        by[ident].append(text)
    pools = []
    for ident, texts in by.items():
        distinct = list(dict.fromkeys(texts))
        step = max(1.0, len(distinct) / k)
        pools.append([(distinct[int(i * step)], ident) for i in range(min(k, len(distinct)))])
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for row in itertools.zip_longest(*pools):
        for item in row:
            if item is not None and item[0] not in seen:
                seen.add(item[0])
                out.append(item)
        if len(out) >= k:
            break
    return out[:k]


def _alignable(members: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The members that may be aligned: under :data:`_LINES_MAX` lines (counted as the aligner splits them:
    ``\r``, ``\x0b``, ``\u2028`` ... too) and at most 3x the median line count (at least 60 lines), the
    median taken over the identities' own medians so that one or two accounts' many long prompts cannot
    raise it (second review, D). Line alignment is quadratic in repeated lines, so one very long prompt
    used to cost seconds, or, over the limit, took the whole group's suggestion away (round 26 review: one
    prompt of 1,000 lines from one account removed the application's suggestion); now it is only left out of
    the alignment (and, not filling the template, it is scanned whole)."""
    counts = [len(t.splitlines()) for t, _ in members]
    per: dict[str | None, list[int]] = defaultdict(list)
    for (_, ident), n in zip(members, counts, strict=True):
        per[ident].append(n)
    medians = sorted(sorted(ns)[len(ns) // 2] for ns in per.values())
    cap = min(_LINES_MAX, max(60, 3 * medians[len(medians) // 2]))
    return [m for m, n in zip(members, counts, strict=True) if n <= cap]


def _consensus(members: list[tuple[str, str | None]], min_identities: int) -> list[str]:
    """The texts to align, the most typical first (the alignment keeps only lines of the first): the one that
    holds the most of the lines that ``min_identities`` identities or more hold (counted by their holders;
    a line only the attacker's accounts hold adds nothing). Where the prompts of a few identities (fewer than
    ``min_identities`` or up to a tenth of the sample's identities, and at most a quarter of them) lack a
    line that every other
    identity holds, those prompts are left out, so that one or two accounts can neither remove a line of
    the application's text from the template nor, sending a prompt of one line, shrink it (round 26
    reviews, B); they can add none either, since a line stays literal only where all the others hold it.
    A prompt that lacks such a line while its identity's other prompts hold it is left out too (second
    review: one account's ordinary prompt beside an odd one)."""
    if not members:
        return []
    # lines as keys (values blanked, whitespace kept): one day's date line is not missing from another day's
    lines = [{_key(ln) for ln in t.splitlines(keepends=True)} for t, _ in members]
    holders: dict[str, set[str | None]] = defaultdict(set)
    for (_, ident), own in zip(members, lines, strict=True):
        for line in own:
            holders[line].add(ident)
    floor = max(min_identities, 1)
    typical = max(
        range(len(members)),
        key=lambda j: (sum(len(holders[ln]) for ln in lines[j] if len(holders[ln]) >= floor), -j),
    )
    order = [typical, *(j for j in range(len(members)) if j != typical)]
    idents = {ident for _, ident in members}
    if min_identities >= 2 and None not in idents:
        # a few: fewer than min_identities, or up to a tenth of the identities (round 27 second review: three
        # accounts' one-line prompts each cut a 63-identity application's template down to an operator's
        # line of their choosing)
        few = max(min_identities - 1, len(idents) // 10)
        common = [ln for ln, who in holders.items() if len(idents - who) <= few]
        odd = [j for j in order if any(ln not in lines[j] for ln in common)]
        who = {members[j][1] for j in odd}
        if odd and len(who) <= few and 4 * len(who) <= len(idents):
            order = [j for j in order if j not in set(odd)]
    return [members[j][0] for j in order]


def _cost(base: list[str], other: list[str]) -> int:
    """A bound on the line pairs the aligner compares: Σ over shared lines of their counts' product."""
    mine, theirs = Counter(base), Counter(other)
    return sum(c * theirs[line] for line, c in mine.items() if line in theirs)


_PAIRS_MAX = 200_000  # a member costing more than this against the first is left out of the alignment


def _runs(texts: list[str], min_literal: int) -> list[str]:
    """The operator's text shared, in order, by every member, as literal runs separated by slots (the first
    member's lines kept where every member holds the same line; a slot where some member holds other text),
    each run of the middle at least ``min_literal`` characters. Lines, not words, are aligned (a 10 KB prompt
    is a few hundred lines; aligned word by word, 200 such prompts took a minute); a slot's line may still
    start with a label every member holds ("Customer: ") and end with the same line break. The list starts
    with the text before the first slot and ends with the text after the last (either may be empty)."""
    members = [t.splitlines(keepends=True) for t in texts]
    base = members[0]
    n = len(base)
    keep = [True] * n
    cut = [False] * (n + 1)  # cut[i]: some member holds other text before base line i (cut[n]: at the end)
    maps: list[tuple[list[str], dict[int, int]]] = [(base, {i: i for i in range(n)})]
    for other in members[1:]:
        if _cost(base, other) > _PAIRS_MAX:
            continue  # repeated lines make the alignment quadratic (second review, D): left out, not aligned
        pos: dict[int, int] = {}
        for a, b, size in SequenceMatcher(None, base, other, autojunk=False).get_matching_blocks():
            for k in range(size):
                pos[a + k] = b + k
        if not pos:
            continue  # shares no line with the first (an odd prompt): left out, it fills no template anyway
        maps.append((other, pos))
        for i in range(n):
            keep[i] = keep[i] and i in pos
        kept = sorted(pos)
        cut[kept[0]] |= pos[kept[0]] != 0
        for i, j in itertools.pairwise(kept):
            cut[j] |= pos[j] != pos[i] + 1
        cut[kept[-1] + 1] |= pos[kept[-1]] != len(other) - 1
    runs: list[list[int]] = [[]]  # base line numbers of each literal run; a slot between two runs
    in_slot = False
    for i in range(n):
        if (cut[i] or not keep[i]) and not in_slot:
            runs.append([])
            in_slot = True
        if keep[i]:
            runs[-1].append(i)
            in_slot = False
    if cut[n] and not in_slot:
        runs.append([])
    if len(runs) == 1:
        return []
    heads, tails = [], []  # per slot: the label every member starts it with, the line break it ends with
    for k in range(len(runs) - 1):
        gaps = []
        for lines, pos in maps:
            lo = pos[runs[k][-1]] + 1 if runs[k] else 0
            hi = pos[runs[k + 1][0]] if runs[k + 1] else len(lines)
            gaps.append("".join(lines[lo:hi]))
        around = _around_values(gaps)
        if around is not None:  # one line of the operator's with values in it: only the values vary
            heads.append(around[0])
            tails.append(around[1])
            continue
        head = _trim_end(_common_prefix(gaps))
        tail = _common_prefix([g[len(head) :][::-1] for g in gaps])[::-1]
        at = tail.find("\n")  # the operator's text after a slot starts at a line break
        heads.append(head)
        tails.append(tail[at:] if at >= 0 else "")
    literals = [
        (tails[k - 1] if k else "") + "".join(base[i] for i in run) + (heads[k] if k < len(heads) else "")
        for k, run in enumerate(runs)
    ]
    # a short literal between two slots (a space, "the") would only cut slots at random places: merged away
    merged = [literals[0], *(t for t in literals[1:-1] if len(t.strip()) >= min_literal), literals[-1]]
    while len(merged) - 1 > MAX_SLOTS:  # too many slots: fold the shortest middle run into a slot
        shortest = min(range(1, len(merged) - 1), key=lambda k: len(merged[k]))
        del merged[shortest]
    return merged


def _around_values(gaps: list[str]) -> tuple[str, str] | None:
    """Where every member's slot is one line of the operator's with values in it: the text before the values
    and after them, which every member holds, so that it stays the operator's literal text and only the
    values go to the slot (round 26). Two kinds of line qualify: lines with the same key (:func:`_key`),
    which differ only in values ("Today's date: 2026-12-07.", "Order 4411 shipped on 3 May."), and lines
    that differ in at most four words taking a few values across the members (a setting: a tone, a
    subject, a language pair; at most a quarter as many values as members), cut at spaces and never
    inside a value. A user's line ("Write a poem about ...", a short greeting) takes as many values as
    there are users and keeps the plain rule (only a label). ``None``: no such line."""
    nl = gaps[0].endswith("\n")
    if any(g.count("\n") > (1 if g.endswith("\n") else 0) or g.endswith("\n") != nl for g in gaps):
        return None
    if len({_key(g) for g in gaps}) == 1:
        values = list(_VALUE.finditer(gaps[0]))
        if not values:
            return None
        return gaps[0][: values[0].start()], gaps[0][values[-1].end() :]
    head = _common_prefix(gaps)
    tail = _common_prefix([g[len(head) :][::-1] for g in gaps])[::-1]
    head = head[: max(head.rfind(" "), head.rfind("\t")) + 1]  # cut at a space, not inside a word
    spaces = [k for k, c in enumerate(tail) if c in " \t"]
    tail = tail[spaces[0] :] if spaces else ("\n" if nl else "")
    first = _VALUE.search(head)
    head = head[: first.start()] if first else head
    last = [m.end() for m in _VALUE.finditer(tail)]
    tail = tail[last[-1] :] if last else tail
    middles = [g[len(head) : len(g) - len(tail)] for g in gaps]
    if any(len(m) > 40 or len(m.split()) > 4 for m in middles) or len(set(middles)) > max(2, len(gaps) // 4):
        return None
    head = head if _LETTER.search(head) else ""
    tail = tail if _LETTER.search(tail) else ("\n" if nl else "")
    if not head and tail in ("", "\n"):
        return None
    return head, tail


_LETTER = re.compile(r"[^\W\d_]")


def _common_prefix(texts: list[str]) -> str:
    """The longest text every one of ``texts`` starts with."""
    first, last = min(texts), max(texts)  # the common prefix of all is that of the extremes
    k = 0
    while k < len(first) and first[k] == last[k]:
        k += 1
    return first[:k]


_LABEL_END = re.compile(r"(?:\n|:[ \t]*)(?=[^\n:]*\Z)")


def _trim_end(literal: str) -> str:
    """``literal`` up to its last line break or label colon (and the spaces after it): "" when it has none."""
    ends = [m.end() for m in _LABEL_END.finditer(literal)]
    return literal[: ends[-1]] if ends else ""


def _template(name: str, runs: list[str]) -> tuple[PromptTemplate, str]:
    slots = len(runs) - 1
    names = ["message"] if slots == 1 else [f"slot{k + 1}" for k in range(slots)]
    parts = [runs[0].replace("{", "{{").replace("}", "}}")]
    for slot, literal in zip(names, runs[1:], strict=True):
        parts.append("{" + slot + "}" + literal.replace("{", "{{").replace("}", "}}"))
    text = "".join(parts)
    return PromptTemplate.parse(name, text), text

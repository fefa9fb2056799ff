"""One regex pass for many detectors: a union of their first characters, one optional lookahead per member.

Python's regex engine skips quickly to the characters a pattern can start with, then pays a fixed cost per
attempted start. Twenty identifier patterns that all start with a digit each attempt a match at every digit
of the text: in digit-dense columns that is where the time goes. Detectors whose pattern begins with a
single-character atom (``\\d``, ``[2-9]``, ``[A-Za-z]`` …) are combined into one pattern::

    [<union of the atoms>](?:(?<=A1)(?=(?P<c0>REST1)))?(?:(?<=A2)(?=(?P<c1>REST2)))?...

One ``finditer`` over it visits each candidate start once and records which members could match there; each
such member's own pattern is then matched at that position (``pattern.match(text, pos)``, lookbehinds see
the text before ``pos``) and its validator runs on that match object, exactly as before. ``finditer``'s
non-overlap is kept per member (a member's next candidate must start at or after its previous match's end,
whether or not the validator accepted it), so the findings are identical to running each detector alone —
``tests/data/test_detector_conformance.py`` checks that on the corpus and on generated data.

Patterns that cannot be combined safely run alone: a top-level alternation, a backreference, flags other
than the default, a first atom that is optional, negated or repeated from zero, a prefilter or a finder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.data.detectors.interface import Detector

_ATOM = re.compile(r"(\\[dw]|\[(?!\^)(?:\\.|[^\]\\])+\]|[A-Za-z0-9@:=_+(])(?:\{(\d+)(?:(,)(\d*))?\})?")
_BACKREF = re.compile(r"\\[1-9]|\(\?P=")
_NAMED = re.compile(r"\(\?P<\w+>")
# The left-boundary lookbehind a pattern checks right after its first atom: (?<![\w./-]\d) -> ([\w./-], \d).
_LEFT = re.compile(r"\(\?<!(\[(?:\\.|[^\]\\])+\])(\\[dw]|\[(?:\\.|[^\]\\])+\])\)")
_DIGITS = "0123456789"
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _top_level_bar(pattern: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def split_first_atom(det: Detector) -> tuple[str, str] | None:
    """(atom, rest) such that ``atom + rest`` matches what ``det.pattern`` matches, or ``None``."""
    pat = det.pattern
    if det.finder is not None or det.prefilter is not None or pat.flags != re.UNICODE:
        return None
    text = pat.pattern
    if _BACKREF.search(text) or _top_level_bar(text):
        return None
    m = _ATOM.match(text)
    if m is None:
        return None
    atom, lo, comma, hi = m.group(1), m.group(2), m.group(3), m.group(4)
    rest = text[m.end() :]
    if rest[:1] in ("?", "*", "+", "{"):
        return None
    if lo is not None:
        n = int(lo)
        if n == 0:
            return None
        if comma is None:
            more = f"{{{n - 1}}}"
        elif hi:
            more = f"{{{n - 1},{int(hi) - 1}}}"
        else:
            more = f"{{{n - 1},}}"
        rest = atom + more + rest
    return atom, _NAMED.sub("(?:", rest)


def _class_body(atom: str) -> str:
    return atom[1:-1] if atom.startswith("[") else (atom if atom.startswith("\\") else re.escape(atom))


@dataclass(frozen=True)
class Group:
    """Members (indices into the detector tuple) scanned by one combined pattern."""

    pattern: re.Pattern[str]
    members: tuple[int, ...]


def _kind(atom: str) -> str | None:
    a = re.compile(atom)
    digits = any(a.fullmatch(c) for c in _DIGITS)
    letters = any(a.fullmatch(c) for c in _LETTERS)
    if digits and not letters:
        return "digit"
    if letters and not digits:
        return "letter"
    return None


def plan(dets: Sequence[Detector]) -> tuple[tuple[Group, ...], tuple[int, ...]]:
    """(combined groups, indices of the detectors that run alone)."""
    by_kind: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    alone: list[int] = []
    for i, det in enumerate(dets):
        split = split_first_atom(det)
        kind = _kind(split[0]) if split is not None else None
        lb = _LEFT.match(split[1]) if split is not None else None
        if split is None or kind is None or lb is None or lb.group(2) != split[0]:
            alone.append(i)
            continue
        by_kind.setdefault((kind, lb.group(1)), []).append((i, *split))
    groups = []
    for (_kind_name, left), members in by_kind.items():
        if len(members) < 2:
            alone.extend(i for i, _, _ in members)
            continue
        # Every member refuses a start right after one of ``left``: so does the group, after its first
        # character (inner positions of a digit run fail there, once for all members).
        union = "[" + "".join(dict.fromkeys(_class_body(a) for _, a, _ in members)) + "]"
        union += f"(?<!{left}{union})"
        body = "".join(f"(?:(?<={a})(?=(?P<c{k}>{r})))?" for k, (_, a, r) in enumerate(members))
        # Succeed only where at least one member matched: (?(c0)|(?(c1)|...(?!))).
        guard = "".join(f"(?(c{k})|" for k in range(len(members))) + "(?!)" + ")" * len(members)
        try:
            compiled = re.compile(union + body + guard)
        except re.error:
            alone.extend(i for i, _, _ in members)
            continue
        groups.append(Group(compiled, tuple(i for i, _, _ in members)))
    return tuple(groups), tuple(sorted(alone))


def candidates(group: Group, text: str) -> list[list[int]]:
    """Per member, the positions where its pattern can match (before finditer's non-overlap)."""
    out: list[list[int]] = [[] for _ in group.members]
    index = [group.pattern.groupindex[f"c{k}"] for k in range(len(group.members))]
    for m in group.pattern.finditer(text):
        regs = m.regs
        p = m.start()
        for k, gi in enumerate(index):
            if regs[gi][0] != -1:
                out[k].append(p)
    return out


__all__ = ["Group", "candidates", "plan", "split_first_atom"]

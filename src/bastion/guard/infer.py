"""Template suggestions from an application's prompt log (issue 16, round 25).

Registering an application's prompt templates (:mod:`bastion.guard.templates`) cuts false flags on the
prompts it sends from about 30 % to 2 % on fresh evaluators, but only where the operator writes the
templates down. :func:`suggest_templates` reads a log of prompts the application already sent and proposes
them: prompts that share the same long constant lines are grouped, aligned line by line, and the text every
member of a group holds in the same order becomes the template's literal text; what varies becomes a slot.
A suggestion is a proposal for a person to review, never applied by itself.

Grouping (round 26): a line's values (words with a digit, month and weekday names) are blanked before lines
are compared, so a date or an id in the operator's line does not make one group per day; a line counts
only when ``min_support`` prompts from ``min_identities`` identities hold it, so a user's own line (their
name) does not split the application's prompts; and every prompt also joins the group of its most common
line, where the lines only some prompts add (a popular retrieved document, a tenant's paragraph) vary and
become slots; a narrower group is read only where its anchor group gave a template (fail closed). On a fresh
evaluator's 12 applications' logs: one suggestion each (before: 29 for 9 of them, none for 3), filling all
their later prompts (before 270/360), 4 characters of foreign text in literal text (before 254); docs/
benchmarks.md, guard, round 26. Against one or two accounts (round 26 review): prompts too long to align
are left out of the alignment, not the group, and the prompts of identities that lack a line every other
identity holds are left out of it, so that such accounts can neither remove nor shrink a suggestion.

Threat model: the attacker controls some prompts in the log (their own requests) and has read this code.
To make their attack part of a template's literal text (which the detector then skips) it must appear, in
the same place, in every prompt of a group of at least ``min_support`` prompts from at least
``min_identities`` identities: one identity cannot do it, and among other users' prompts the alignment
drops whatever the attacker's prompts alone hold. Against many identities (Sybils) every suggestion
carries the detector's verdict on its own literal text, and the operator is told to register only text
that is their application's own. A log without identities yields no suggestion unless the caller accepts
that risk with ``min_identities=0``.

The operator's own text (round 27, ``operator_text``): an application's rules read like an injection, so the
verdict on a suggestion's literal text flagged exactly the applications with the most false flags. Given the
text the operator wrote, the lines of the literal text that are whole lines (or whole parts between
placeholders, or runs of a hard-wrapped file's lines) of it are not judged, where most of the log's
identities send the suggestion; a line of it that the detector flags on its own only where it stands as in
the operator's text. Every other line is judged, also beside the operator's lines, so a Sybil's line, a
popular document or an attack that an operator's rule quotes still flags the suggestion
(:mod:`bastion.guard._vouch`, :mod:`bastion.guard._judge`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidInput
from bastion.guard._align import (
    _alignable,
    _consensus,
    _key,
    _lines,
    _runs,
    _sample,
    _template,
)
from bastion.guard._judge import judge, vouched
from bastion.guard._vouch import MAX_OPERATOR_CHARS, OperatorText, vouched_share
from bastion.guard.templates import TEMPLATE_CHANNELS, PromptTemplate

_ALIGN_MAX = 48  # members aligned per group (every member is then checked against the template)
MAX_PROMPTS = 100_000
MAX_PROMPT_CHARS = 32_768
MAX_LOG_CHARS = (
    64_000_000  # ~10 s of grouping on the reference machine (second review: 100,000 x 32 KB ~ 10 min)
)


@dataclass(frozen=True)
class TemplateSuggestion:
    """A proposed template: ``template`` fills ``support`` of the log's prompts from ``identities``
    identities; ``literal_score`` / ``literal_flagged`` are the detector's verdict on the template's own
    text (flagged: register it only if you wrote that text)."""

    template: PromptTemplate
    text: str  # the template in str.format syntax ({slot}; literal braces doubled)
    support: int
    identities: int
    literal_score: float
    literal_flagged: bool
    flagged_by: str = ""  # the part of its own text with the worst verdict, where flagged (for the review)
    flagged_channel: str = ""  # ... and the channel it was flagged on
    vouched: float = 0.0  # share of its own text that is in the operator's text (``operator_text``)
    vouch_applied: bool = False  # ... left out of the verdict (most of the log's identities send it)
    whole_score: float = 0.0  # the verdict's score on its own text with the operator's lines in it
    vouched_flagged: tuple[str, ...] = ()  # the operator's lines in it that are flagged on their own
    follows_operator: bool = False  # it is the operator's text with slots at its placeholders

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.template.name,
            "template": self.text,
            "slots": list(self.template.slots),
            "support": self.support,
            "identities": self.identities,
            "literal_score": round(self.literal_score, 4),
            "literal_flagged": self.literal_flagged,
            "channels": list(self.template.channels),
            "flagged_by": self.flagged_by,
            "flagged_channel": self.flagged_channel,
            "vouched": round(self.vouched, 4),
            "vouch_applied": self.vouch_applied,
            "whole_score": round(self.whole_score, 4),
            "vouched_flagged": list(self.vouched_flagged),
            "follows_operator": self.follows_operator,
        }


def suggest_templates(
    prompts: Iterable[str | tuple[str, str | None]],
    *,
    min_support: int = 20,
    min_identities: int = 3,
    min_literal: int = 12,
    detector: Any = None,
    channel: str = "user",
    operator_text: str | Iterable[str] | None = None,
) -> list[TemplateSuggestion]:
    """Templates proposed from ``prompts`` (texts, or ``(text, identity)`` pairs), most used first.

    A suggestion needs ``min_support`` prompts that fill it exactly, from ``min_identities`` distinct
    identities (0: identities not required; a prompt without one never counts as one), a literal text of at
    least ``min_literal`` characters between slots, and at least two distinct values in every slot.
    ``channel``: the channel the logged prompts were sent on (user messages by default); each suggestion
    applies there only and its literal text is judged there. ``detector`` (a
    :class:`~bastion.guard.detector.PromptDetector`; the packaged one by default) judges each template's
    literal text. ``operator_text``: the application's own prompt text (its system prompt, its prompt-building
    code's strings; placeholders such as ``{name}`` allowed): a line of a template's literal text that is a
    whole line of it, or a whole part between its placeholders, is the operator's and is not judged
    (``vouched`` is the share of the literal text it covers); everything else is judged as before."""
    if min_support < 2 or min_identities < 0 or min_literal < 1:
        raise InvalidInput(
            "min_support must be at least 2, min_identities at least 0, min_literal at least 1"
        )
    if channel not in TEMPLATE_CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(TEMPLATE_CHANNELS)}")
    operator = OperatorText([operator_text] if isinstance(operator_text, str) else (operator_text or ()))
    rows: list[tuple[str, str | None]] = []
    total = 0
    for item in prompts:
        text, ident = (item, None) if isinstance(item, str) else item
        if not isinstance(text, str) or (ident is not None and not isinstance(ident, str)):
            raise InvalidInput("each prompt is a string or a (string, identity) pair")
        if len(text) > MAX_PROMPT_CHARS:
            raise InvalidInput(f"a prompt longer than {MAX_PROMPT_CHARS} characters")
        rows.append((text, ident))
        total += len(text)
        if len(rows) > MAX_PROMPTS:
            raise InvalidInput(f"more than {MAX_PROMPTS} prompts")
        if total > MAX_LOG_CHARS:
            raise InvalidInput(f"a log over {MAX_LOG_CHARS:,} characters: suggest from a sample of it")
    keys = [list(dict.fromkeys(_key(ln) for ln in _lines(text))) for text, _ in rows]
    seen: Counter[str] = Counter()
    senders: dict[str, set[str]] = defaultdict(set)
    for (_, ident), ks in zip(rows, keys, strict=True):
        seen.update(ks)
        if ident is not None:
            for key in ks:
                if len(senders[key]) < min_identities:
                    senders[key].add(ident)
    # a line is the application's when many prompts from several identities hold it: a line only one user's
    # prompts hold (their name, their plan, their signature) does not split the application's prompts
    frequent = {key for key, c in seen.items() if c >= min_support and len(senders[key]) >= min_identities}
    groups: dict[tuple[str, ...], list[tuple[str, str | None]]] = defaultdict(list)
    for row, ks in zip(rows, keys, strict=True):
        sig = tuple(k for k in ks if k in frequent)
        if sig:
            groups[sig].append(row)
            # ... and every prompt also joins the group of its most common line (the application's own, held
            # by all of its prompts): the lines some of them add (a popular retrieved document, a language
            # pair, a tenant's paragraph) then vary across that group and become slots (round 26, H1/H2)
            anchor = max(sig, key=lambda k: seen[k])
            groups[("\x00anchor", anchor)].append(row)
    if detector is None:
        from bastion.guard.detector import default_detector

        detector = default_detector()
    found: list[
        tuple[PromptTemplate, str, list[str], int]
    ] = []  # template, text, prompts it fills, identities
    done: set[str] = set()
    # the anchor groups first; a narrower group only where its anchor group gave a template (fail closed:
    # round 26 review, a prompt that made the anchor group fail let its narrower groups' templates, with
    # a popular document or one customer's details as literal text, come back)
    anchored: set[str] = set()
    wide: dict[str, int] = {}  # identities of each anchor group
    order = sorted(groups.items(), key=lambda kv: (kv[0][:1] != ("\x00anchor",), -len(kv[1])))
    for sig, members in order:
        is_anchor = sig[:1] == ("\x00anchor",)
        senders_here = len({i for _, i in members if i is not None})
        need = min_identities
        if is_anchor:
            wide[sig[1]] = senders_here
        else:
            anchor = max(sig, key=lambda k: seen[k])
            if anchor not in anchored:
                continue
            # a narrower group speaks for a real share of its application's users, not for three accounts
            # whose prompts the application's template happens not to fill (second review, C)
            need = max(min_identities, -(-wide[anchor] // 4))
        if len(members) < min_support or senders_here < need:
            continue  # decided before any alignment: one account's group costs nothing (round 25 review)
        aligned = _consensus(_sample(_alignable(members), _ALIGN_MAX), min_identities)
        if not aligned:
            continue
        runs = _runs(aligned, min_literal)
        if not runs or sum(len(t.strip()) for t in runs) < min_literal:
            continue
        template, text = _template("suggested", runs)
        if text in done:
            if is_anchor:
                anchored.add(sig[1])
            continue
        fills = [(template.split(t), t, ident) for t, ident in members]
        covered = [(v, t, ident) for v, t, ident in fills if v is not None]
        idents = {ident for _, _, ident in covered if ident is not None}
        # a slot only a few identities' prompts fill (the rest leave it empty) is one they opened in the
        # application's text: aligned once more without those prompts, which then fill no template (round
        # 27 third review, F1: one account's line beside the operator's quoted attacks opened a slot there)
        few = max(min_identities - 1, len(idents) // 10)
        odd = {
            t
            for n in range(len(template.slots))
            if 0 < len(who := {i for v, _, i in covered if v[n].strip()}) <= few
            and 4 * len(who) <= len(idents)
            for v, t, _ in covered
            if v[n].strip()
        }
        if odd and min_identities >= 2 and None not in idents:
            rest = [m for m in members if m[0] not in odd]
            again = _consensus(_sample(_alignable(rest), _ALIGN_MAX), min_identities)
            runs = _runs(again, min_literal) if again else []
            if runs and sum(len(t.strip()) for t in runs) >= min_literal:
                template, text = _template("suggested", runs)
                fills = [(template.split(t), t, ident) for t, ident in members]
                covered = [(v, t, ident) for v, t, ident in fills if v is not None]
                idents = {ident for _, _, ident in covered if ident is not None}
        if len(covered) < min_support or len(idents) < need:
            continue
        if any(len({v[k] for v, _, _ in covered}) < 2 for k in range(len(template.slots))):
            continue
        done.add(text)
        if is_anchor:
            anchored.add(sig[1])
        found.append((template, text, [t for _, t, _ in covered], len(idents)))
    # a suggestion whose every prompt another one fills as well adds nothing but literal text: dropped (round
    # 25 review: three accounts' attack lines around a slot, or a mass mail's lines, made a narrower template
    # inside the application's own one's slot; round 27 fresh evaluator: one contributor's name, with the
    # repository's name in a slot); of two that fill each other's prompts, the one with less literal text
    size = [sum(map(len, t.literals)) for t, _, _, _ in found]

    def covers(j: int, k: int) -> bool:
        return all(found[j][0].split(p) is not None for p in found[k][2])

    kept = [
        k
        for k in range(len(found))
        if not any(
            j != k and covers(j, k) and ((size[j], j) < (size[k], k) or not covers(k, j))
            for j in range(len(found))
        )
    ]
    out: list[TemplateSuggestion] = []
    log_identities = len({ident for _, ident in rows if ident is not None})
    for k in kept:
        template, text, prompts, identities = found[k]
        template = PromptTemplate(
            name=f"suggested{len(out) + 1}",
            literals=template.literals,
            slots=template.slots,
            channels=(channel,),
        )
        # support over the whole log, not only the group it came from (second review, E1)
        filling = [ident for t, ident in rows if template.split(t) is not None]
        support = max(len(prompts), len(filling))
        n_senders = max(identities, len({i for i in filling if i is not None}))
        held, shown, follows = vouched(detector, template, operator)
        share = vouched_share(template.literals, held)
        # the operator's text speaks for a template only where most of the log's identities send it: three
        # accounts that sent lines of it on their own (a quoted example attack, a privileged branch) got those
        # lines vouched for in a template of their own (round 27 review, H1); a log without identities, where
        # one account may send most of the prompts, gets no such pass (second review, H1c)
        applied = share > 0 and 2 * n_senders > log_identities > 0
        score, flagged, by, by_channel = judge(detector, template, held if applied else None)
        whole = judge(detector, template)[0] if applied else score
        out.append(
            TemplateSuggestion(
                template=template,
                text=text,
                support=support,
                identities=n_senders,
                literal_score=score,
                literal_flagged=flagged,
                flagged_by=by,
                flagged_channel=by_channel,
                vouched=share,
                vouch_applied=applied,
                whole_score=whole,
                vouched_flagged=shown,
                follows_operator=follows,
            )
        )
    return out


__all__ = [
    "MAX_LOG_CHARS",
    "MAX_OPERATOR_CHARS",
    "MAX_PROMPTS",
    "MAX_PROMPT_CHARS",
    "TemplateSuggestion",
    "suggest_templates",
]

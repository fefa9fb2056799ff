"""The detector's verdict on a suggested template's own text (issue 16, rounds 25-27).

A template's literal text is what the detector skips once the template is registered, so a suggestion
carries the detector's verdict on it: joined, piece by piece and line by line. With the operator's own text
(:mod:`bastion.guard._vouch`), the lines it holds are left out, except a line the detector flags on its own
(a quoted example attack, a privileged branch) where the template does not follow the operator's text; the
other lines are also judged beside the operator's lines.
"""

from __future__ import annotations

from typing import Any

from bastion.guard._align import LINE_MIN
from bastion.guard._vouch import (
    OperatorText,
    _norm,
    beside_slots,
    mask,
    placeholder_beside,
    shaped,
    unvouched,
)
from bastion.guard.templates import PromptTemplate

Held = list[list[bool]]


def _line_channels(template: PromptTemplate) -> tuple[str, ...]:
    return ("user",) if "user" in template.channels else template.channels


def _alone(detector: Any, template: PromptTemplate, line: str) -> bool:
    return any(detector.scan(line, channel=c).flagged for c in _line_channels(template))


def vouched(
    detector: Any, template: PromptTemplate, operator: OperatorText | None
) -> tuple[Held, tuple[str, ...], bool]:
    """Which lines of the template's literal text the operator's text vouches for; the operator's lines in it
    that the detector flags on their own (a quoted example attack, a privileged branch; at most ten, for the
    review); and whether each of them lies in a stretch of the template that is one of the operator's
    texts whole, slots where its placeholders are (:func:`~bastion.guard._vouch.shaped`). Only those are
    vouched for:
    three reviews of round 27 cut an application's template down to its operator's quoted attacks (three
    accounts, one prompt each), or opened a slot beside them (one account), and had them vouched for."""
    held = mask(template.literals, operator)
    if operator is None or not operator:
        return held, (), False
    alone = [
        (k, j, ln.strip())
        for k, lit in enumerate(template.literals)
        for j, ln in enumerate(lit.split("\n"))
        if ln.strip() and held[k][j] and _alone(detector, template, ln)
    ]
    inside = shaped(template.literals, operator) if alone else set()
    if alone:
        # ... and a slot beside it only where the operator put a placeholder beside it: the attacker fills a
        # slot at scan time, where its text is judged alone (round 27 fourth review)
        sides = beside_slots(template.literals)
        for k, j, text in alone:
            if (k, j) in sides and not placeholder_beside(operator.texts, _norm(text), *sides[(k, j)]):
                inside.discard((k, j))
    follows = all((k, j) in inside for k, j, _ in alone)
    for k, j, _ in alone:
        if (k, j) not in inside:
            held[k][j] = False
    return held, tuple(dict.fromkeys(t for _, _, t in alone))[:10], follows


def _parts(template: PromptTemplate, held: Held | None) -> list[tuple[str, tuple[str, ...]]]:
    """What :func:`judge` judges, and on which channels: the literal text joined and each piece on every
    channel the template applies on, and each line of 16 characters or more on the user channel where it
    applies there (else on its channels); the lines ``held`` marks left out (all of them: nothing to
    judge)."""
    left = unvouched(template.literals, held) if held is not None else list(template.literals)
    pieces = [lit for lit in left if lit.strip()]
    if held is not None and not pieces:
        return []
    texts = ["\n".join(pieces) or " ", *(pieces if len(pieces) > 1 else [])]
    lines = [ln for p in pieces for ln in p.split("\n") if len(ln.strip()) >= LINE_MIN and ln not in texts]
    return [(t, template.channels) for t in texts] + [(ln, _line_channels(template)) for ln in lines]


_RAISE = 0.15  # a score raised this much by the lines the operator did not write is theirs to answer for


def _in_context(template: PromptTemplate, held: Held) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Where the operator vouches for some lines and not for others: (the lines not vouched for, the text
    with them, the text without them, channels), per piece, and per such line with the non-blank line
    before and after it, across slots (second review: the rule at a piece's end, the line turning it around
    after the slot), so that a line that turns the operator's rule around ("do the opposite of the rule
    above") is judged beside that rule (round 27 review, H2)."""
    out = []
    for lit, own in zip(template.literals, held, strict=True):
        lines = lit.split("\n")
        if all(own) or not any(o for o, ln in zip(own, lines, strict=True) if ln.strip()):
            continue  # all the operator's, or none of it: the parts judge it
        left = "\n".join("" if o else ln for ln, o in zip(lines, own, strict=True)).strip()
        mine = "\n".join(ln if o else "" for ln, o in zip(lines, own, strict=True))
        out.append((left, lit, mine, template.channels))
    flat = [
        (ln, o)
        for lit, own in zip(template.literals, held, strict=True)
        for ln, o in zip(lit.split("\n"), own, strict=True)
    ]
    body = [n for n, (ln, _) in enumerate(flat) if ln.strip()]
    for m, n in enumerate(body):
        if flat[n][1]:
            continue
        near = [body[i] for i in (m - 1, m + 1) if 0 <= i < len(body)]
        if not any(flat[i][1] for i in near):
            continue
        with_it = "\n".join(flat[i][0] for i in sorted([*near, n]))
        without = "\n".join(flat[i][0] for i in near)
        out.append((flat[n][0].strip(), with_it, without, _line_channels(template)))
    return out


def judge(detector: Any, template: PromptTemplate, held: Held | None = None) -> tuple[float, bool, str, str]:
    """The detector's worst verdict on a template's own text, joined and piece by piece, on every channel it
    applies on (round 25 review F4: a template applied to tool messages too was judged as user text only),
    and line by line (round 26 review: an attack line between four benign lines on each side scored 0.38
    joined, 0.77 alone); with ``held`` (:func:`vouched`), the operator's lines left out and the other lines
    also judged beside them (:func:`_in_context`). Also the shortest flagged part and its channel (the
    operator reads it)."""
    score, flagged, hits = 0.0, False, []
    for text, channels in _parts(template, held):
        for channel in channels:
            verdict = detector.scan(text, channel=channel)
            score = max(score, float(verdict.score))
            if verdict.flagged:
                flagged = True
                hits.append((len(text), text.strip(), channel))
    for shown, with_it, without, channels in _in_context(template, held) if held is not None else ():
        for channel in channels:
            verdict = detector.scan(with_it, channel=channel)
            if not verdict.flagged:
                continue
            base = detector.scan(without, channel=channel)
            if not base.flagged or float(verdict.score) >= float(base.score) + _RAISE:
                score, flagged = max(score, float(verdict.score)), True
                hits.append((len(shown), shown, channel))
    _, by, by_channel = min(hits) if hits else (0, "", "")
    return score, flagged, by, by_channel


def literal_verdict(detector: Any, template: PromptTemplate) -> tuple[float, bool]:
    """The score and verdict of :func:`judge` on the whole literal text."""
    score, flagged, _, _ = judge(detector, template)
    return score, flagged

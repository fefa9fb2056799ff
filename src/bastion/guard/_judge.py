"""The detector's verdict on a suggested template's own text (issue 16, rounds 25-27).

A template's literal text is what the detector skips once the template is registered, so a suggestion
carries the detector's verdict on it: joined, piece by piece and line by line; with the operator's own text
(:mod:`bastion.guard._vouch`), the lines it vouches for are left out, and the other lines are also judged
beside them.
"""

from __future__ import annotations

from typing import Any

from bastion.guard._align import LINE_MIN
from bastion.guard._vouch import OperatorText, unvouched
from bastion.guard.templates import PromptTemplate


def _parts(
    template: PromptTemplate, operator: OperatorText | None = None
) -> list[tuple[str, tuple[str, ...]]]:
    """What :func:`judge` judges, and on which channels: the literal text joined and each piece on every
    channel the template applies on, and each line of 16 characters or more on the user channel where it
    applies there (else on its channels); the lines ``operator`` vouches for left out (all of them: nothing
    to judge)."""
    pieces = [lit for lit in unvouched(template.literals, operator) if lit.strip()]
    if operator and not pieces:
        return []
    texts = ["\n".join(pieces) or " ", *(pieces if len(pieces) > 1 else [])]
    lines = [ln for p in pieces for ln in p.split("\n") if len(ln.strip()) >= LINE_MIN and ln not in texts]
    return [(t, template.channels) for t in texts] + [(ln, _line_channels(template)) for ln in lines]


def _line_channels(template: PromptTemplate) -> tuple[str, ...]:
    return ("user",) if "user" in template.channels else template.channels


_RAISE = 0.15  # a score raised this much by the lines the operator did not write is theirs to answer for


def _in_context(
    template: PromptTemplate, operator: OperatorText
) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Where the operator vouches for some lines of a piece and not for others: (the lines not vouched for,
    the text with them, the text without them, channels), per piece and per such line with the non-blank
    line before and after it, so that a line that turns the operator's rule around ("do the opposite of the
    rule above") is judged beside that rule (round 27 review, H2)."""
    out = []
    for lit, left in zip(template.literals, unvouched(template.literals, operator), strict=True):
        if lit.strip() == left.strip() or not left.strip():
            continue  # all the operator's, or none of it: the parts judge it
        lines = lit.split("\n")
        own = [operator.holds(ln) for ln in lines]
        out.append(
            (
                left.strip(),
                lit,
                "\n".join("" if not o else ln for ln, o in zip(lines, own, strict=True)),
                template.channels,
            )
        )
        body = [j for j, ln in enumerate(lines) if ln.strip()]
        for n, j in enumerate(body):
            if own[j]:
                continue
            near = [body[m] for m in (n - 1, n + 1) if 0 <= m < len(body)]
            if not any(own[m] for m in near):
                continue
            with_it = "\n".join(lines[m] for m in sorted([*near, j]))
            without = "\n".join(lines[m] for m in near)
            out.append((lines[j].strip(), with_it, without, _line_channels(template)))
    return out


def judge(
    detector: Any, template: PromptTemplate, operator: OperatorText | None = None
) -> tuple[float, bool, str, str]:
    """The detector's worst verdict on a template's own text, joined and piece by piece, on every channel it
    applies on (round 25 review F4: a template applied to tool messages too was judged as user text only),
    and line by line (round 26 review: an attack line between four benign lines on each side scored 0.38
    joined, 0.77 alone); with ``operator``, its lines left out and the other lines also judged beside them
    (:func:`_in_context`). Also the shortest flagged part and its channel (the operator reads it)."""
    score, flagged, hits = 0.0, False, []
    for text, channels in _parts(template, operator):
        for channel in channels:
            verdict = detector.scan(text, channel=channel)
            score = max(score, float(verdict.score))
            if verdict.flagged:
                flagged = True
                hits.append((len(text), text.strip(), channel))
    for shown, with_it, without, channels in _in_context(template, operator) if operator else ():
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


def literal_verdict(
    detector: Any, template: PromptTemplate, operator: OperatorText | None = None
) -> tuple[float, bool]:
    """The score and verdict of :func:`judge`."""
    score, flagged, _, _ = judge(detector, template, operator)
    return score, flagged


def vouched_flagged(detector: Any, template: PromptTemplate, operator: OperatorText) -> tuple[str, ...]:
    """The operator's lines in a template that the detector flags on their own (at most three, for the
    review: a quoted example attack, a privileged branch)."""
    found: list[str] = []
    for lit in template.literals:
        for ln in lit.split("\n"):
            if (
                ln.strip()
                and operator.holds(ln)
                and ln.strip() not in found
                and len(found) < 3
                and any(detector.scan(ln, channel=c).flagged for c in _line_channels(template))
            ):
                found.append(ln.strip())
    return tuple(found)

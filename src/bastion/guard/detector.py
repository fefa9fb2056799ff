"""Prompt inspection: normalise, decode and rescan, score with the signed classifier, decide per channel.

``scan_prompt(text, channel=...)`` → :class:`PromptVerdict`. Channels: ``user`` (a chat turn), ``retrieved``
(a document fetched by RAG or a web tool; indirect injection, ATLAS AML.T0051.001) and ``tool`` (a tool's
output). Each channel has its own threshold, calibrated at training time on benign validation text of that
kind. Encoded spans (base64, hex, escapes, ROT13 when hinted) are decoded and rescanned; a decoded span that
scores as an attack flags the prompt as obfuscated (AML.T0068). Text longer than ``max_chars`` is scanned in
full but capped at ``max_chars`` per call (longer inputs are refused: fail closed).

Several messages of one request: :meth:`PromptDetector.scan_messages` scans each message and, per channel with
more than one message, their concatenation, so an instruction split over the messages of one request is also
seen whole (round-6 cold review, M6).

An optional second stage (:class:`~bastion.guard.interface.SecondStage`, e.g. a user's ONNX classifier) is
asked only for borderline scores (within ``borderline`` of the threshold) and its score replaces the first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bastion.errors import InvalidInput
from bastion.guard.classifier import GuardModel, load_model
from bastion.guard.interface import SecondStage
from bastion.guard.normalize import OVERFLOW, decoded_spans, normalize
from bastion.guard.rules import CATEGORY_IDS, INDIRECT_IDS, INJECTION, JAILBREAK, OBFUSCATION, RULES
from bastion.guard.templates import PromptTemplate, filled, filled_all, parse_templates

Channel = Literal["user", "retrieved", "tool"]
CHANNELS: tuple[str, ...] = ("user", "retrieved", "tool")
MAX_CHARS = 200_000
_CATEGORY_OF = {r.name: r.category for r in RULES}


@dataclass(frozen=True)
class PromptVerdict:
    """The result of :func:`scan_prompt`. ``flagged`` means score >= threshold of the channel."""

    flagged: bool
    score: float
    threshold: float
    channel: str
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    atlas: tuple[str, ...]
    owasp: tuple[str, ...]
    latency_ms: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "channel": self.channel,
            "categories": list(self.categories),
            "reasons": list(self.reasons),
            "atlas": list(self.atlas),
            "owasp": list(self.owasp),
            "latency_ms": round(self.latency_ms, 3),
        }


def _ids(categories: tuple[str, ...], channel: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    atlas: list[str] = []
    owasp: list[str] = []
    for cat in categories:
        a, o = CATEGORY_IDS[cat]
        atlas += [x for x in a if x not in atlas]
        owasp += [x for x in o if x not in owasp]
    if channel != "user" and INJECTION in categories:
        atlas += [x for x in INDIRECT_IDS if x not in atlas]
    return tuple(atlas), tuple(owasp)


def _score_once(
    model: GuardModel, text: str, scored: dict[str, tuple[float, tuple[str, ...]]]
) -> tuple[float, tuple[str, ...]]:
    """``model.score(text)``, looked up in ``scored`` first (a text met twice in one scan is scored once)."""
    got = scored.get(text)
    if got is None:
        got = scored[text] = model.score(text)
    return got


class PromptDetector:
    """The layered prompt detector; thread-safe (no mutable state after construction)."""

    def __init__(
        self,
        *,
        model: GuardModel | None = None,
        second_stage: SecondStage | None = None,
        borderline: float = 0.15,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.model = model if model is not None else load_model()
        self.second_stage = second_stage
        self.borderline = borderline
        self.max_chars = max_chars

    def _check(self, text: str, channel: str) -> None:
        if channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})")
        if not isinstance(text, str):
            raise InvalidInput("text must be a string")
        if len(text) > self.max_chars:
            raise InvalidInput(f"text longer than {self.max_chars} characters")

    def scan(
        self, text: str, *, channel: str = "user", templates: Sequence[PromptTemplate] = ()
    ) -> PromptVerdict:
        """The verdict on ``text``. With ``templates`` (the application's own prompt templates,
        :mod:`bastion.guard.templates`): a text that fills one exactly is judged by its slots' values (each,
        and all joined), the operator's literal text not at all; any other text is scanned whole."""
        self._check(text, channel)
        templates = parse_templates(templates)  # a {name: text} table too; anything else is refused
        matches = filled_all(text, templates, channel=channel) if templates else []
        if not matches:
            return self._scan(text, channel)
        t0 = time.perf_counter()
        # every template the text fills is read, and the worst verdict kept: a second, narrower template (an
        # attack registered as literal text beside the application's own) cannot hide what the other reads
        verdicts: list[tuple[PromptVerdict, str]] = []
        for template, values in matches:
            parts = [v for v in values if v.strip()]
            if len(parts) > 1:  # an attack split across slots is read whole too
                parts.append("\n".join(parts))
            # the operator's words still count as mentions of an encoding ("Decode the note: {note}")
            hints = "\n".join(template.literals)
            verdicts += [(self._scan(p, channel, hints), template.name) for p in parts]
        if not verdicts:  # nothing but the operator's text
            atlas, owasp = _ids((), channel)
            threshold = self.model.thresholds[channel]
            return PromptVerdict(False, 0.0, threshold, channel, (), (), atlas, owasp, 0.0)
        worst, name = max(verdicts, key=lambda v: v[0].score)
        reasons = (*worst.reasons, f"template:{name}") if worst.flagged else ()
        return replace(worst, reasons=reasons, latency_ms=(time.perf_counter() - t0) * 1000.0)

    def _scan(self, text: str, channel: str, hints: str = "") -> PromptVerdict:
        t0 = time.perf_counter()
        threshold = self.model.thresholds[channel]
        model = self.model.for_channel(channel)
        norm = normalize(text)
        score, hits = model.score(norm.text)
        reasons = [f"rule:{h}" for h in hits]
        categories = [_CATEGORY_OF[h] for h in hits]
        scored = {norm.text: (score, hits)}  # round 18: a reading that normalises to a text already scored
        for encoding, decoded in decoded_spans(norm.raw or norm.text, also=norm.text, hints=hints):
            d_score, d_hits = (
                _score_once(model, normalize(decoded).text, scored) if encoding != OVERFLOW else (1.0, ())
            )
            if d_score >= threshold:
                reasons.append(f"decoded:{encoding}")
                reasons += [f"rule:{h}" for h in d_hits if f"rule:{h}" not in reasons]
                categories += [OBFUSCATION, *(_CATEGORY_OF[h] for h in d_hits)]
                score = max(score, d_score)
        if "tag-characters" in norm.flags and len(text) - len(text.encode("ascii", "ignore")) > 8:
            categories.append(OBFUSCATION)
        if self.second_stage is not None and abs(score - threshold) < self.borderline:
            score = float(self.second_stage.score(norm.text, channel=channel))
            reasons.append("second-stage")
        flagged = score >= threshold
        if flagged:
            reasons.insert(0, f"classifier:{score:.3f}>={threshold:.3f}")
            reasons += [f"normalised:{f}" for f in norm.flags]
            if not categories:
                categories.append(INJECTION if channel != "user" else JAILBREAK)
        cats = tuple(dict.fromkeys(categories)) if flagged else ()
        atlas, owasp = _ids(cats, channel)
        return PromptVerdict(
            flagged=flagged,
            score=score,
            threshold=threshold,
            channel=channel,
            categories=cats,
            reasons=tuple(reasons) if flagged else (),
            atlas=atlas,
            owasp=owasp,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
        )

    def scan_messages(
        self, texts: Sequence[tuple[str, str]], *, templates: Sequence[PromptTemplate] = ()
    ) -> list[PromptVerdict]:
        """One verdict per non-empty ``(channel, text)``, plus one per channel with several texts for their
        concatenation (newline-joined; its last ``max_chars`` characters when longer). With ``templates``, a
        text that fills one counts by its slots' values, in its own verdict and in the concatenation."""
        templates = parse_templates(templates)
        verdicts = [self.scan(t, channel=ch, templates=templates) for ch, t in texts if t]
        for channel in CHANNELS:
            got = [_content(t, templates, channel) for ch, t in texts if ch == channel and t]
            parts = [t for t, _ in got if t]
            if len(parts) > 1:
                joined = "\n".join(parts)[-self.max_chars :]
                hints = "\n".join(h for _, h in got if h)  # the templates' words (see scan)
                verdicts.append(self._scan(joined, channel, hints))
        return verdicts


def _content(text: str, templates: Sequence[PromptTemplate], channel: str) -> tuple[str, str]:
    """``(text, "")``, or the newline-joined values of the slots of the template ``text`` fills (on
    ``channel``) and that template's literal text (hints for the decoders)."""
    match = filled(text, templates, channel=channel) if templates else None
    if match is None:
        return text, ""
    return "\n".join(v for v in match[1] if v.strip()), "\n".join(match[0].literals)


@functools.cache
def default_detector() -> PromptDetector:
    """The packaged, signature-verified detector (loaded once per process)."""
    return PromptDetector()


def scan_prompt(
    text: str,
    *,
    channel: Channel = "user",
    detector: PromptDetector | None = None,
    templates: Sequence[PromptTemplate] = (),
) -> PromptVerdict:
    """Inspect one prompt (or a retrieved document / tool output with ``channel``); ``templates``: the
    application's own prompt templates (:class:`~bastion.guard.templates.PromptTemplate`), whose literal
    text is the operator's and is not scanned when ``text`` fills one exactly."""
    return (detector or default_detector()).scan(text, channel=channel, templates=templates)


__all__ = ["CHANNELS", "Channel", "PromptDetector", "PromptVerdict", "default_detector", "scan_prompt"]

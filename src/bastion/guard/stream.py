"""Incremental output scanning for streamed completions, with a hold-back so nothing unsafe is ever sent.

The scanner keeps the text received so far and releases only what lies more than ``holdback`` characters
behind the newest character. Every chunk re-checks the unreleased tail plus ``overlap`` characters before it
with the output policy; a span shorter than the hold-back (a card number, a canary, a markdown image) is thus
complete in the checked text before its first character could be released. Three things are held longer:

* a fetch construct that has begun but is not finished (an image or link whose URL has not ended, a
  reference definition whose line has not ended, an HTML tag not yet closed, a bare URL;
  :func:`bastion.guard.leaks.open_construct`) is held whole, however long, so its redaction never begins
  inside text already sent; one longer than ``max_hold`` characters cuts the stream (bounded memory);
* with canaries, the held text keeps at least as many letters and digits as the longest canary has, and the
  canaries are also matched in the skeleton (letters and digits, folded) of the released text plus the held
  text, so a canary spelt out with spaces, zero-width characters or punctuation between its characters is
  caught when it completes, before its last character is sent;
* a redaction that would change text already sent (which the hold-back should make impossible) cuts the
  stream instead of releasing unredacted text (fail closed).

On a violation in block mode (or a canary, a deny-list hit, a link in block mode) the stream is cut:
:meth:`feed` returns ``stop=True`` and no further text — the client never receives the violating span nor
anything after it. In redact mode PII spans and links are replaced in the text before release. ``finish()``
checks and releases the last tail.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.guard.leaks import MIN_SKELETON, open_construct, skeleton
from bastion.guard.policy import OutputContext, OutputPolicy, OutputVerdict

_SPAN_END = 4  # unchanged characters after the last redaction before it is taken as complete


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _common_suffix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class StreamStep:
    release: str
    stop: bool
    verdict: OutputVerdict | None = None


def _cut_verdict(finding: str) -> OutputVerdict:
    atlas, owasp = (
        ("AML.T0077", "LLM05:2025") if finding == "link-exfiltration" else ("AML.T0057", "LLM02:2025")
    )
    return OutputVerdict(action="block", text="", findings=(finding,), atlas=(atlas,), owasp=(owasp,))


class StreamGuard:
    def __init__(
        self,
        *,
        policy: OutputPolicy,
        context: OutputContext | None = None,
        holdback: int = 64,
        overlap: int = 256,
        max_hold: int = 4096,
        prefer_redact: bool = False,
    ) -> None:
        canaries = context.canaries if context else ()
        longest_canary = max((len(c) for c in canaries), default=0)
        self.policy = policy
        self.context = context
        self.holdback = max(holdback, longest_canary + 1)
        self.overlap = overlap
        self.max_hold = max(max_hold, 2 * self.holdback)
        self.prefer_redact = prefer_redact
        skels = [skeleton(c) for c in canaries if c]
        self._canary_skels = [s for s in skels if len(s) >= MIN_SKELETON]
        self._skel_len = max((len(s) for s in self._canary_skels), default=0)
        self._skel_released = ""  # skeleton of the released text's end, for canaries spread out wide
        self._pending = ""  # received, not yet released (possibly redacted)
        self._released_tail = ""  # the last `overlap` released characters, for context
        self.stopped: OutputVerdict | None = None
        self.findings: list[str] = []

    def _stop(self, verdict: OutputVerdict) -> StreamStep:
        self.stopped = verdict
        self._pending = ""
        return StreamStep("", True, verdict)

    @property
    def canary_skeletons(self) -> list[str]:
        return list(self._canary_skels)

    def skeleton_view(self) -> str:
        """The skeleton of the released text's end and of the held text (for a check across guards)."""
        return self._skel_released + skeleton(self._pending) if self._canary_skels else ""

    def _canary_spread(self, held: str) -> bool:
        if not self._canary_skels:
            return False
        s = self._skel_released + skeleton(self._pending + held)
        return any(c in s or c[::-1] in s for c in self._canary_skels)

    def _keep_for_canaries(self) -> int:
        """The position in the pending text from which on it holds ``_skel_len`` letters or digits."""
        count, i = 0, len(self._pending)
        floor = max(0, len(self._pending) - self.max_hold)
        while i > floor and count < self._skel_len:
            i -= 1
            if self._pending[i].isalnum():
                count += 1
        return i

    def _check(self, final: bool) -> StreamStep:
        head = len(self._released_tail)
        # an unfinished construct is held whole and judged once finished (or at the end): judging a prefix of
        # it would remove a fragment and release the rest of it as text
        start = None if final else open_construct(self._pending)
        held = "" if start is None else self._pending[start:]
        if start is not None:
            if len(held) > self.max_hold:
                return self._stop(_cut_verdict("link-exfiltration"))
            self._pending = self._pending[:start]
        window = self._released_tail + self._pending
        verdict = self.policy.check(window, context=self.context, prefer_redact=self.prefer_redact)
        if verdict.blocked:
            return self._stop(verdict)
        if self._canary_spread(held):
            return self._stop(OutputVerdict("block", "", ("canary",), ("AML.T0056",), ("LLM07:2025",)))
        defer = None
        if verdict.action == "redact":
            if verdict.text[:head] != self._released_tail:
                # the redaction reaches into text already sent: cut rather than send the rest unredacted
                return self._stop(OutputVerdict("block", "", verdict.findings, verdict.atlas, verdict.owasp))
            if (
                not final
                and _common_suffix(window, verdict.text) < _SPAN_END
                and len(window) <= self.max_hold
            ):
                # a span that reaches the end may still grow (a card's first digits read as a phone
                # number): redact it once something follows it; meanwhile hold from its first character
                defer = _common_prefix(window, verdict.text) - head
            else:
                self.findings += [f for f in verdict.findings if f not in self.findings]
                self._pending = verdict.text[head:]
        self._pending += held
        if final:
            cut = len(self._pending)
        else:
            cut = max(0, len(self._pending) - self.holdback)
            if self._skel_len:
                cut = min(cut, self._keep_for_canaries())
            start = open_construct(self._pending)
            if start is not None:
                cut = min(cut, start)
            if defer is not None:
                cut = min(cut, defer)
        release, self._pending = self._pending[:cut], self._pending[cut:]
        self._released_tail = (self._released_tail + release)[-self.overlap :]
        if self._skel_len and release:
            self._skel_released = (self._skel_released + skeleton(release))[-2 * self._skel_len :]
        return StreamStep(release, False, verdict)

    def feed(self, chunk: str) -> StreamStep:
        if self.stopped is not None:
            return StreamStep("", True, self.stopped)
        self._pending += chunk
        return self._check(final=False)

    def finish(self) -> StreamStep:
        if self.stopped is not None:
            return StreamStep("", True, self.stopped)
        return self._check(final=True)


__all__ = ["StreamGuard", "StreamStep"]

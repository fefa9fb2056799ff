"""Incremental output scanning for streamed completions, with a hold-back so nothing unsafe is ever sent.

The scanner keeps the text received so far and releases only what lies more than ``holdback`` characters
behind the newest character. Every chunk re-checks the unreleased tail plus ``overlap`` characters before it
with the output policy; a span shorter than the hold-back (a card number, a canary, a markdown image) is thus
complete in the checked text before its first character could be released. On a violation in block mode (or
a canary, a deny-list hit, a link in block mode) the stream is cut: :meth:`feed` returns ``stop=True`` and no
further text — the client never receives the violating span nor anything after it. In redact mode PII spans
are replaced in the text before release. ``finish()`` checks and releases the last tail.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.guard.policy import OutputContext, OutputPolicy, OutputVerdict


@dataclass(frozen=True)
class StreamStep:
    release: str
    stop: bool
    verdict: OutputVerdict | None = None


class StreamGuard:
    def __init__(
        self,
        *,
        policy: OutputPolicy,
        context: OutputContext | None = None,
        holdback: int = 64,
        overlap: int = 256,
    ) -> None:
        longest_canary = max((len(c) for c in (context.canaries if context else ())), default=0)
        self.policy = policy
        self.context = context
        self.holdback = max(holdback, longest_canary + 1)
        self.overlap = overlap
        self._pending = ""  # received, not yet released (possibly redacted)
        self._released_tail = ""  # the last `overlap` released characters, for context
        self.stopped: OutputVerdict | None = None
        self.findings: list[str] = []

    def _check(self, final: bool) -> StreamStep:
        window = self._released_tail + self._pending
        verdict = self.policy.check(window, context=self.context)
        if verdict.blocked:
            self.stopped = verdict
            self._pending = ""
            return StreamStep("", True, verdict)
        if verdict.action == "redact":
            self.findings += [f for f in verdict.findings if f not in self.findings]
            # redactions only ever touch spans inside the pending part: the released part was checked before
            head = len(self._released_tail)
            if verdict.text[:head] == self._released_tail:
                self._pending = verdict.text[head:]
        cut = len(self._pending) if final else max(0, len(self._pending) - self.holdback)
        release, self._pending = self._pending[:cut], self._pending[cut:]
        self._released_tail = (self._released_tail + release)[-self.overlap :]
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

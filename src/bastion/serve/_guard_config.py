"""The guarded proxy's settings (:class:`ProxyConfig`) and its tokens-per-minute budget per identity
(:class:`TokenBudget`); :mod:`bastion.serve.guard_proxy` re-exports both."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import ConfigError, InvalidInput
from bastion.guard.policy import PolicyConfig
from bastion.guard.templates import PromptTemplate, parse_templates
from bastion.guard.wire import estimate_tokens

MODES = ("block", "redact", "shadow")


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str
    mode: str = "block"
    requests_per_minute: Mapping[str, str] = field(default_factory=dict)  # role -> "100/minute"
    tokens_per_minute: Mapping[str, int] = field(default_factory=lambda: {"consumer": 20_000})
    default_tokens_per_minute: int = 100_000
    output: PolicyConfig = field(default_factory=PolicyConfig)
    canaries: tuple[str, ...] = ()
    system_prompt: str | None = None
    max_body_bytes: int = 1 << 20
    upstream_timeout_s: float = 60.0
    upstream_api_key: str | None = None
    unsafe_fail_open: bool = False
    session_header: str = "x-bastion-session"
    # identity roles that may send system/developer messages (the operator's instructions: counted, not
    # scanned); every other role is refused 403 (deny by default, issue 16 attack16 H1)
    system_roles: tuple[str, ...] = ()
    # the answer cap forwarded when a request names none, so the upstream is held to what was charged (M2)
    default_max_tokens: int = 256
    max_choices: int = 16  # n / best_of above this are refused
    # request fields beyond the OpenAI ones the guard knows (vendor parameters), forwarded with every string
    # in them scanned; any other unknown field is refused (400)
    extra_fields: tuple[str, ...] = ()
    # the application's own prompt templates (round 24, ``[guard.templates]``): a prompt or message that fills
    # one exactly is judged by what fills its slots; the operator's literal text is not scanned
    templates: tuple[PromptTemplate, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}")
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError("--upstream must be an http(s) URL")
        for name in ("system_roles", "extra_fields"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(r, str) for r in value):
                raise ConfigError(f"{name} must be a list of names")
        object.__setattr__(self, "templates", parse_templates(self.templates))
        if self.default_max_tokens < 1 or self.max_choices < 1:
            raise ConfigError("default_max_tokens and max_choices must be positive")


def request_cost(
    payload: dict[str, Any], kind: str, texts: list[tuple[str, str]], *, config: ProxyConfig
) -> int:
    """Tokens charged before the upstream is called (issue 16 attack16 M2): the prompt's estimate plus every
    completion the request can make, ``max(max_tokens, max_completion_tokens) × max(n, best_of)`` (× prompts
    on ``/v1/completions``). A request that names no cap gets ``default_max_tokens`` forwarded as
    ``max_tokens`` (set in ``payload``), so the upstream generates no more than was charged."""
    caps: list[int] = []
    choices: list[int] = []
    for key, into in (
        ("max_tokens", caps),
        ("max_completion_tokens", caps),
        ("n", choices),
        ("best_of", choices),
    ):
        v = payload.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidInput("max_tokens, max_completion_tokens, n and best_of must be positive integers")
        into.append(v)
    if max(choices, default=1) > config.max_choices:
        raise InvalidInput(f"n and best_of are limited to {config.max_choices}")
    if not caps:
        payload["max_tokens"] = config.default_max_tokens
        caps = [config.default_max_tokens]
    prompts = len(payload["prompt"]) if kind == "text" and isinstance(payload.get("prompt"), list) else 1
    answers = max(caps) * max(choices, default=1) * max(prompts, 1)
    return sum(estimate_tokens(t) for _, t in texts) + answers


class TokenBudget:
    """Tokens per minute per identity: a sliding-window counter (this minute's count plus the previous
    minute's, weighted by how much of it still overlaps the last 60 s), in memory, thread-safe, no timers."""

    def __init__(self, *, window_s: float = 60.0, max_keys: int = 100_000, now: Any = time.monotonic) -> None:
        self._w, self._max, self._now = window_s, max_keys, now
        self._counts: dict[str, tuple[int, float, float]] = {}  # key -> (window index, previous, current)
        self._lock = threading.Lock()

    def take(self, key: str, cost: int, *, per_minute: int) -> bool:
        t = self._now()
        idx = int(t // self._w)
        frac = (t % self._w) / self._w
        with self._lock:
            w, prev, cur = self._counts.get(key, (idx, 0.0, 0.0))
            if idx != w:
                prev, cur = (cur if idx == w + 1 else 0.0), 0.0
            used = prev * (1.0 - frac) + cur
            if cost > per_minute or used + cost > per_minute:
                self._counts[key] = (idx, prev, cur)
                return False
            if len(self._counts) >= self._max and key not in self._counts:
                self._counts.clear()  # bounded memory; forgetting only ever lets callers through sooner
            self._counts[key] = (idx, prev, cur + cost)
            return True


class AnswerMemory:
    """Digests of the answers this proxy returned to each identity (keyed BLAKE2b, a per-process key; in
    memory, bounded, least recently used dropped), so an ``assistant`` turn the client sends back that is one
    of them is not scanned again as a prompt: it already passed the output policy. Any other assistant turn
    (edited, fabricated, or from before a restart) is scanned like a user message."""

    def __init__(self, *, max_items: int = 200_000) -> None:
        self._key = os.urandom(32)
        self._max = max_items
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, identity: str, text: str) -> bytes:
        h = hashlib.blake2b(key=self._key, digest_size=16)
        h.update(identity.encode("utf-8", "surrogatepass") + b"\0")
        h.update(text.strip().encode("utf-8", "surrogatepass"))
        return h.digest()

    def remember(self, identity: str, text: str) -> None:
        if not text.strip():
            return
        d = self._digest(identity, text)
        with self._lock:
            self._seen[d] = None
            self._seen.move_to_end(d)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)

    def known(self, identity: str, text: str) -> bool:
        d = self._digest(identity, text)
        with self._lock:
            return d in self._seen

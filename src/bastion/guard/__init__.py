"""GenAI runtime inspection: prompt-injection and jailbreak detection, output policy, a guarded proxy.

* :func:`scan_prompt` — normalisation (NFKC, invisible characters, homoglyphs), decoding of
  base64/hex/escapes/ROT13 with a rescan, rules and a signed hashed-n-gram classifier; per channel
  (``user``, ``retrieved``, ``tool``) → :class:`PromptVerdict` with score, reasons and ATLAS/OWASP LLM IDs;
  ``templates`` (:class:`PromptTemplate`): the application's own prompt text, not scanned when a prompt
  fills a template exactly (only what fills its slots is); :func:`suggest_templates` proposes them from a log
  of the prompts an application sent;
* :func:`scan_output` — PII and secrets (``bastion.data`` detectors), canary tokens and system-prompt overlap,
  markdown image/link exfiltration, deny lists, per-role policy → :class:`OutputVerdict`;
* :class:`StreamGuard` — the same policy over a streamed answer, cut before a violating span is sent;
* :mod:`bastion.guard.probe` — ``bastion guard probe``; the proxy of ``bastion guard serve`` composes the
  guard with the gateway's parts, so it lives in the gateway: :mod:`bastion.serve.guard_proxy`.
"""

from __future__ import annotations

from bastion.guard.classifier import GuardModel, load_model
from bastion.guard.detector import CHANNELS, PromptDetector, PromptVerdict, default_detector, scan_prompt
from bastion.guard.infer import TemplateSuggestion, suggest_templates
from bastion.guard.interface import OnnxSecondStage, SecondStage
from bastion.guard.normalize import Normalized, decoded_spans, normalize
from bastion.guard.policy import (
    OutputContext,
    OutputPolicy,
    OutputVerdict,
    PolicyConfig,
    RolePolicy,
    SessionScore,
    scan_output,
)
from bastion.guard.stream import StreamGuard, StreamStep
from bastion.guard.templates import PromptTemplate

__all__ = [
    "CHANNELS",
    "GuardModel",
    "Normalized",
    "OnnxSecondStage",
    "OutputContext",
    "OutputPolicy",
    "OutputVerdict",
    "PolicyConfig",
    "PromptDetector",
    "PromptTemplate",
    "PromptVerdict",
    "RolePolicy",
    "SecondStage",
    "SessionScore",
    "StreamGuard",
    "StreamStep",
    "TemplateSuggestion",
    "decoded_spans",
    "default_detector",
    "load_model",
    "normalize",
    "scan_output",
    "scan_prompt",
    "suggest_templates",
]

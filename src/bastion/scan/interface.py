"""The scanner's plug-in axis: one :class:`FormatHandler` per container or file-format family.

The walker (:mod:`bastion.scan._walk`) reads a view's first bytes and asks every registered handler, in
registry order (:mod:`bastion.scan._formats`), whether it ``matches``; the first that does scans the view and
returns the format name the report shows (``"zip"``, ``"gzip:joblib"`` …). Handlers judge through the
:class:`Walk` they are given: findings go to ``walk.adder(member)``, unreadable parts to ``walk.error``,
nested views (archive members, decompressed streams, a polyglot's prefix) back to ``walk.scan`` one level
deeper.

Contract every handler is tested against (``tests/scan/test_handlers.py``, run for every registered handler):

* ``name`` is unique in the registry, and a benign sample of the family is matched and scans clean;
* a malicious sample of the family (a pickle that calls ``os.system`` carried the way the family carries
  pickles, or the family's own code-execution route) is flagged;
* truncated or corrupted samples never raise out of the walk: they end in a finding or a scan error
  (:class:`~bastion.scan._io.Malformed` is the handler's way to say "cannot be analysed"), never "safe";
* ``matches`` only looks at ``head`` (the first 512 bytes) and bounded reads of ``src``; it never parses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bastion.scan._io import Source
from bastion.scan._model import Issue, ScanConfig

#: ``add(rule, severity, message, callable_=None, offset=None)``: record one finding on a member
AddIssue = Callable[..., None]


class Walk(Protocol):
    """What a handler may use of the walk in progress (one walk per scanned file)."""

    config: ScanConfig
    path: Path  # the scanned file (ONNX external data is resolved next to it)
    issues: list[Issue]
    members: list[str]
    torchscript: bool  # inside a TorchScript archive (its C++ unpickler resolves ``__torch__`` classes)
    external_data: list[str]  # files next to the scanned one that it makes its loader read (ONNX)
    external_spans: list[tuple[str, int, int]]  # (file, offset, length or -1: to the end) of those reads

    def adder(self, member: str) -> AddIssue: ...

    def error(self, member: str, message: str) -> None: ...

    def note(self, member: str, message: str) -> None: ...

    def scan(self, src: Source, member: str, depth: int) -> str: ...

    def replay(self, src: Source, member: str, what: str, *, strict: bool = True) -> bool: ...

    def charge(self, n: int, produced: int, consumed: int, what: str) -> None: ...


class FormatHandler(Protocol):
    """One container or file-format family."""

    @property
    def name(self) -> str: ...

    def matches(self, head: bytes, src: Source) -> bool: ...

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str: ...


__all__ = ["AddIssue", "FormatHandler", "Walk"]

"""The opcode walk: simulate stack and memo of one pickle stream, judge every import, call and mutation.

:class:`PickleAnalyzer` holds the walk's state and its main loop, which inlines the most frequent opcodes and
dispatches the others through a 256-entry table to their handlers (:mod:`.opcodes`); imports, calls and
mutations are judged, and reported, by the call policy (:mod:`.policy`). Operand decoding, the simulated
values and joblib's array layout live beside it (:mod:`.operands`, :mod:`.values`, :mod:`.joblib`).
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from typing import Any

from bastion.scan._allowlist import (
    normalise_extra,
)
from bastion.scan._io import BoundExceeded, Malformed, Reader
from bastion.scan._model import Issue, ScanConfig
from bastion.scan._pickle import opcodes
from bastion.scan._pickle.joblib import array_layout
from bastion.scan._pickle.operands import ARG_KINDS, read_arg
from bastion.scan._pickle.values import (
    Box,
    Obj,
    Opaque,
    PickleResult,
)


class PickleAnalyzer:
    """Analyse one pickle stream from a reader's current position up to its STOP."""

    def __init__(
        self,
        reader: Reader,
        *,
        config: ScanConfig,
        issues: list[Issue],
        member: str,
        torchscript: bool = False,
        joblib: bool = False,
    ) -> None:
        self.r = reader
        self.torchscript = torchscript
        self.joblib = joblib
        self.wrappers = 0  # joblib array wrappers BUILT (in either mode)
        self.issues_at_wrapper = 0
        self.frame_end: int | None = None
        self.config = config
        self.issues = issues
        self.member = member
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.globals: list[str] = []
        self.persistent: list[Any] = []
        self.offset = 0
        self.extra = normalise_extra(config.extra_allow)
        self._max_stack = config.max_stack

    # -- stack helpers ----------------------------------------------------------------------------------
    def push(self, v: Any) -> None:
        stack = self.stack
        stack.append(v)
        if len(stack) > self._max_stack:
            raise BoundExceeded("pickle stack exceeds its bound", self.offset)

    def push_nested(self, v: Box | Obj) -> None:
        if v.depth > self.config.max_nesting:
            raise BoundExceeded(f"pickle nesting deeper than {self.config.max_nesting}", self.offset)
        self.push(v)

    def pop(self) -> Any:
        if not self.stack:
            raise Malformed("pickle stack underflow", self.offset)
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise Malformed("pickle MARK missing", self.offset)
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise Malformed("pickle stack underflow", self.offset)
        return self.stack[-1]

    # -- main loop --------------------------------------------------------------------------------------
    def run(self) -> PickleResult:
        """Walk to STOP. The most frequent opcodes are inlined (same semantics as their ``op_`` handlers)."""
        r = self.r
        start = r.pos
        limit = start + self.config.max_pickle_bytes
        max_ops = self.config.max_pickle_ops
        max_nesting = self.config.max_nesting
        table = _TABLE
        read_byte = r.read_byte
        read = r.read
        memo = self.memo
        max_stack = self._max_stack
        max_memo = self.config.max_memo
        metastack = self.metastack
        from_bytes = int.from_bytes
        ops = 0
        # offsets at or past ``guard`` need the slow checks (stream bound, frame end)
        guard = limit + 1 if self.frame_end is None else min(limit + 1, self.frame_end)
        while True:
            p = r._bpos  # Reader.pos and Reader.read_byte, inlined: this loop is the hot path
            offset = r._base + p
            if offset >= guard:
                if offset > limit:
                    raise BoundExceeded("pickle stream exceeds max_pickle_bytes", offset)
                frame_end = self.frame_end
                if frame_end is not None and offset >= frame_end:
                    if offset > frame_end:
                        # CPython's C and Python unpicklers disagree on opcodes that straddle a frame's end
                        raise Malformed("an opcode crosses the end of a pickle frame", offset)
                    self.frame_end = None
                guard = limit + 1 if self.frame_end is None else min(limit + 1, self.frame_end)
            buf = r._buf
            if p < len(buf):
                code = buf[p]
                r._bpos = p + 1
            else:
                code = read_byte()
            ops += 1
            stack = self.stack
            # fast paths for the most frequent opcodes
            if code == 0x94:  # MEMOIZE
                if not stack:
                    raise Malformed("pickle stack underflow", offset)
                memo[len(memo)] = stack[-1]
                if len(memo) > max_memo:
                    raise BoundExceeded("pickle memo exceeds its bound", offset)
                continue
            if code == 0x8C:  # SHORT_BINUNICODE
                try:
                    stack.append(read(read_byte()).decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError as exc:
                    raise Malformed("invalid UTF-8 in string operand", offset) from exc
            elif code == 0x4B:  # BININT1
                stack.append(read_byte())
            elif code == 0x4A:  # BININT
                stack.append(from_bytes(read(4), "little", signed=True))
            elif code == 0x4D:  # BININT2
                stack.append(from_bytes(read(2), "little"))
            elif code == 0x47:  # BINFLOAT (the value never matters to the analysis)
                read(8)
                stack.append(0.0)
            elif code == 0x71:  # BINPUT
                idx = read_byte()
                if not stack:
                    raise Malformed("pickle stack underflow", offset)
                memo[idx] = stack[-1]
                continue
            elif code == 0x68:  # BINGET
                idx = read_byte()
                if idx not in memo:
                    raise Malformed(f"memo key {idx} read before it was written", offset)
                stack.append(memo[idx])
            elif code == 0x85 or code == 0x86 or code == 0x87:  # TUPLE1, TUPLE2, TUPLE3
                n = code - 0x84
                if len(stack) < n:
                    raise Malformed("pickle stack underflow", offset)
                box = Box("tuple", stack[-n:])
                del stack[-n:]
                if box.depth > max_nesting:
                    raise BoundExceeded(f"pickle nesting deeper than {max_nesting}", offset)
                stack.append(box)
                continue
            elif code == 0x28:  # MARK
                metastack.append(stack)
                self.stack = []
                if len(metastack) > max_nesting:
                    raise BoundExceeded(f"pickle MARK nesting deeper than {max_nesting}", offset)
                continue
            elif code == 0x4E:  # NONE
                stack.append(None)
            elif code == 0x7D:  # EMPTY_DICT
                stack.append(Box("dict"))
            elif code == 0x5D:  # EMPTY_LIST
                stack.append(Box("list"))
            elif code == 0x29:  # EMPTY_TUPLE
                stack.append(Box("tuple"))
            else:
                entry = table[code]
                if entry is None:
                    raise Malformed(f"invalid pickle opcode 0x{code:02x}", offset)
                self.offset = offset
                handler, kind = entry
                if kind is None:
                    arg = None
                elif kind == "uint1":
                    arg = read_byte()
                else:
                    arg = read_arg(r, kind, offset)
                if handler is None:  # STOP
                    value = self.pop() if self.stack else None
                    if self.metastack:
                        value = Opaque("unbalanced")
                    return PickleResult(value, start, r.pos, self.globals, self.persistent)
                handler(self, arg)
                if ops > max_ops:
                    raise BoundExceeded("pickle has more opcodes than max_pickle_ops", self.offset)
                guard = limit + 1 if self.frame_end is None else min(limit + 1, self.frame_end)
                continue
            if len(stack) > max_stack:
                raise BoundExceeded("pickle stack exceeds its bound", offset)

    # -- joblib ---------------------------------------------------------------------------------------
    def joblib_array(self, wrapper: Obj) -> None:
        """Skip (or analyse) the array data joblib.load reads after a wrapper's BUILD, by numpy's rules."""
        if self.frame_end is not None and self.r.pos < self.frame_end:
            raise Malformed(
                "joblib array data inside a pickle frame (joblib reads past the frame)", self.offset
            )
        count, itemsize, has_object, aligned = array_layout(wrapper, self.offset)
        self.frame_end = None  # the check above: the frame (if any) ends here, where joblib's data starts
        if has_object:
            nested = PickleAnalyzer(
                self.r,
                config=self.config,
                issues=self.issues,
                member=self.member,
                torchscript=self.torchscript,
            )
            nested.run()  # joblib reads it with a plain unpickler: no wrapper expansion inside
            self.globals.extend(nested.globals)
            return
        if aligned:
            self.r.skip(self.r.read_byte())
        self.r.skip(count * itemsize)


def _build_table() -> list[tuple[Callable[[PickleAnalyzer, Any], None] | None, str | None] | None]:
    table: list[tuple[Callable[[PickleAnalyzer, Any], None] | None, str | None] | None] = [None] * 256
    for code, (name, kind) in ARG_KINDS.items():
        handler = None if name == "STOP" else getattr(opcodes, f"op_{name}")
        table[code] = (handler, kind)
    return table


_TABLE = _build_table()


def analyze_pickle(
    reader: Reader,
    *,
    config: ScanConfig,
    issues: list[Issue],
    member: str,
    torchscript: bool = False,
    joblib: bool = False,
) -> PickleResult:
    """Analyse one pickle starting at the reader's position; findings are appended to ``issues``.

    ``joblib=True`` reads it as ``joblib.load`` does (array data after each ``NumpyArrayWrapper``);
    otherwise as ``pickle.load`` does (those bytes are opcodes).
    """
    return PickleAnalyzer(
        reader, config=config, issues=issues, member=member, torchscript=torchscript, joblib=joblib
    ).run()


#: every opcode byte: CPython needs no PROTO, so a stream may begin with any opcode (``C``, ``I0x1`` …)
_OPCODE_START = frozenset(bytes([op.code.encode("latin-1")[0]]) for op in pickletools.opcodes)


def looks_like_pickle(head: bytes) -> bool:
    """Whether ``pickle.load`` would start decoding ``head``: its first byte is an opcode."""
    return bool(head) and head[:1] in _OPCODE_START


__all__ = ["PickleAnalyzer", "analyze_pickle", "looks_like_pickle"]

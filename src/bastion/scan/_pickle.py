"""Static pickle analysis: walk the opcodes, simulate stack and memo, never import or unpickle.

Every global a pickle imports (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) is judged against the allow-list
of :mod:`bastion.scan._allowlist`; every call (``REDUCE``, ``OBJ``, ``NEWOBJ(_EX)``, ``INST``) must target
such an imported global, and ``BUILD`` on an imported global (class-attribute overwrite) is refused.
Operands that cannot be resolved statically (``STACK_GLOBAL`` on values that are not plain strings,
extension-registry codes, calls on computed values) are findings, not guesses.

The walk is iterative with explicit bounds (opcode count, stack size, MARK and container nesting, memo size,
stream size), so adversarial input ends in :class:`~bastion.scan._io.Malformed`, never in a RecursionError.
Where CPython's readers could disagree with this walk the stream is refused, not guessed: integer literals are
parsed as CPython parses them (``I0x1``, ``I+1``, ``I1_0``, ``I010``), an opcode straddling a ``FRAME`` end is
malformed, and ``BUILD``/``SETITEM``/``APPEND`` on anything this pickle did not build (an imported global, a
persistent object, ``numpy.dtype(..., copy=False)``) is a finding.

joblib's ``NumpyArrayWrapper`` is understood only in a joblib reading (``joblib=True``), only for the exact
construction joblib writes (``NEWOBJ`` with no arguments, then ``BUILD`` with joblib's keys, at a frame
boundary), with numpy computing the item size from the real dtype: the raw array bytes are skipped (numeric
dtypes) or analysed as the nested pickle joblib reads with a plain unpickler (object dtype). The scanner
judges the ``pickle.load`` reading of the same bytes separately (CPython's unpickler, replayed with stubs).
"""

from __future__ import annotations

import codecs
import functools
import pickletools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.scan._allowlist import TORCHSCRIPT_ONLY, _is_allowed, is_known_dangerous, normalise_extra
from bastion.scan._io import BoundExceeded, Malformed, Reader
from bastion.scan._model import Issue, ScanConfig, Severity

STR_CAP = 1 << 16  # strings/bytes longer than this are skipped, not materialised
ITEM_CAP = 256  # container items kept for later inspection (joblib wrapper state, dtype args)
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


class Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


class Box:
    """A container built by the pickle (list, tuple, dict, set); keeps its first items only."""

    __slots__ = ("depth", "items", "kind", "truncated")

    def __init__(self, kind: str, items: list[Any] | None = None) -> None:
        self.kind = kind
        self.items: list[Any] = []
        self.depth = 1
        self.truncated = False
        if items:
            self.extend(items)

    def extend(self, items: list[Any]) -> None:
        room = ITEM_CAP - len(self.items)
        if len(items) > room:
            self.truncated = True
        self.items.extend(items[: max(room, 0)])
        for it in items:
            if type(it) is Box or type(it) is Obj:
                d = it.depth + 1
                if d > self.depth:
                    self.depth = d


class Obj:
    """The result of a call (or persistent load) in the pickle; ``fresh`` when built by this pickle."""

    __slots__ = ("args", "ctor", "depth", "fresh", "state")

    def __init__(self, ctor: str, args: Any = None, *, fresh: bool = True) -> None:
        self.ctor = ctor
        self.args = args
        self.state: Any = None
        self.depth = _depth(args) + 1
        self.fresh = fresh


class JoblibWrapperClass(Global):
    """joblib's ``NumpyArrayWrapper`` class in a joblib reading: only ``NEWOBJ`` on it is understood."""

    __slots__ = ()


class Opaque:
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _depth(v: Any) -> int:
    return v.depth if isinstance(v, Box | Obj) else 0


def plain(v: Any, depth: int = 0) -> Any:
    """A small plain-Python view of a simulated value (for reading wrapper states, torch headers)."""
    if depth > 8:
        return None
    if isinstance(v, Box):
        if v.kind == "dict":
            out: dict[Any, Any] = {}
            for k, val in v.items:
                pk = plain(k, depth + 1)
                if isinstance(pk, str | int | bytes | float | bool | None):
                    out[pk] = plain(val, depth + 1)
            return out
        items = [plain(i, depth + 1) for i in v.items]
        return tuple(items) if v.kind == "tuple" else items
    return v


@dataclass
class PickleResult:
    value: Any
    start: int
    end: int
    globals: list[str] = field(default_factory=list)
    persistent: list[Any] = field(default_factory=list)


_ARG_KINDS: dict[int, tuple[str, str | None]] = {
    op.code.encode("latin-1")[0]: (op.name, op.arg.name if op.arg else None) for op in pickletools.opcodes
}
_STRTOL = re.compile(rb"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


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

    # -- findings ---------------------------------------------------------------------------------------
    def _issue(self, rule: str, severity: Severity, message: str, callable_: str | None = None) -> None:
        if len(self.issues) < 1000:
            self.issues.append(Issue(rule, severity, message, self.member, callable_, self.offset))

    def _check_global(self, module: str, name: str) -> Global:
        if not _valid_dotted(module) or not _valid_dotted(name):
            # find_class could not import this: the load fails here (text that merely starts like a pickle)
            raise Malformed(f"invalid global name {module[:40]!r} {name[:40]!r}", self.offset)
        full = f"{module}.{name}"
        self.globals.append(full)
        if self.torchscript and (
            module.split(".", 1)[0] == "__torch__" or f"{module}:{name}" in TORCHSCRIPT_ONLY
        ):
            # classes compiled from the archive's TorchScript code and torch.jit._pickle helpers:
            # torch.jit.load's C++ unpickler resolves them itself (pickle cannot import a __torch__ module)
            return Global(module, name)
        if self.joblib and full == JOBLIB_WRAPPER:
            return JoblibWrapperClass(module, name)
        if not _is_allowed(module, name, self.extra):
            if is_known_dangerous(module, name):
                self._issue(
                    "pickle-dangerous-global", Severity.critical, f"imports dangerous callable {full}", full
                )
            else:
                self._issue("pickle-global-not-allowed", Severity.high, f"imports {full} (not allowed)", full)
        return Global(module, name)

    def _callee(self, v: Any, op: str) -> str:
        if type(v) is JoblibWrapperClass:
            raise Malformed("joblib array wrapper built in a form joblib does not write", self.offset)
        if isinstance(v, Global):
            return v.full
        self._issue(
            "pickle-unresolved-call",
            Severity.high,
            f"{op} calls a computed value ({type(v).__name__}), not an imported global",
        )
        return f"<{type(v).__name__}>"

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

    # -- argument decoding ------------------------------------------------------------------------------
    def _arg(self, kind: str | None) -> Any:
        r = self.r
        if kind is None:
            return None
        if kind == "uint1":
            return r.read_byte()
        if kind == "uint2":
            return int.from_bytes(r.read(2), "little")
        if kind == "int4":
            return int.from_bytes(r.read(4), "little", signed=True)
        if kind == "uint4":
            return int.from_bytes(r.read(4), "little")
        if kind == "uint8":
            return int.from_bytes(r.read(8), "little")
        if kind == "float8":
            r.skip(8)
            return 0.0
        if kind in ("long1", "long4"):
            n = r.read_byte() if kind == "long1" else int.from_bytes(r.read(4), "little", signed=True)
            if n < 0:
                raise Malformed("negative LONG length", self.offset)
            if n > 64:
                r.skip(n)
                return Opaque("long")
            return int.from_bytes(r.read(n), "little", signed=True)
        if kind in ("string1", "bytes1", "unicodestring1"):
            return self._blob(r.read_byte(), kind)
        if kind in ("string4", "bytes4", "unicodestring4"):
            n = int.from_bytes(r.read(4), "little", signed=(kind == "string4"))
            if n < 0:
                raise Malformed("negative string length", self.offset)
            return self._blob(n, kind)
        if kind in ("bytes8", "unicodestring8", "bytearray8"):
            return self._blob(int.from_bytes(r.read(8), "little"), kind)
        if kind == "stringnl":
            line = r.readline().rstrip(b"\r")
            if len(line) < 2 or line[:1] not in (b"'", b'"') or line[-1:] != line[:1]:
                raise Malformed("malformed STRING argument", self.offset)
            raw = codecs.escape_decode(line[1:-1])[0]
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError:
                return raw
        if kind == "stringnl_noescape":
            return r.readline().decode("utf-8", "replace")
        if kind == "stringnl_noescape_pair":
            return (r.readline().decode("utf-8", "replace"), r.readline().decode("utf-8", "replace"))
        if kind == "unicodestringnl":
            return r.readline().decode("raw-unicode-escape")
        if kind in ("decimalnl_short", "decimalnl_long"):
            # exactly CPython's load_int / load_long: int(text, 0) accepts 0x1, +1, 1_0, spaces
            line = r.readline()
            if kind == "decimalnl_short" and line in (b"00", b"01"):
                return line == b"01"
            if kind == "decimalnl_long" and line.endswith(b"L"):
                line = line[:-1]
            m = _STRTOL.fullmatch(line)
            if kind == "decimalnl_short" and m:  # C's strtol first (it reads 010 as octal)
                value = (
                    int(m.group(2), 0)
                    if not m.group(2).startswith(b"0") or len(m.group(2)) == 1
                    else (int(m.group(2), 16) if m.group(2)[1:2] in (b"x", b"X") else int(m.group(2), 8))
                )
                if value < 1 << 63:
                    return -value if m.group(1) == b"-" else value
            try:
                return int(line, 0)
            except ValueError as exc:
                if "digits" in str(exc):  # longer than CPython's int-string limit: CPython refuses too
                    raise Malformed("INT/LONG literal too long", self.offset) from exc
                raise Malformed("malformed INT/LONG argument", self.offset) from exc
        if kind == "floatnl":
            line = r.readline().strip()
            try:
                return float(line)
            except ValueError as exc:
                raise Malformed("malformed FLOAT argument", self.offset) from exc
        raise Malformed(f"unknown argument kind {kind}", self.offset)

    def _blob(self, n: int, kind: str) -> Any:
        r = self.r
        if n > r.remaining():
            raise Malformed(f"truncated: {n}-byte operand at offset {self.offset}", self.offset)
        if n > STR_CAP:
            r.skip(n)
            return Opaque("str" if kind.startswith("unicode") else "bytes")
        data = r.read(n)
        if kind.startswith("unicode"):
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise Malformed("invalid UTF-8 in string operand", self.offset) from exc
        if kind == "string1" or kind == "string4":
            try:
                return data.decode("ascii")
            except UnicodeDecodeError:
                return data
        return data

    # -- main loop --------------------------------------------------------------------------------------
    def run(self) -> PickleResult:
        r = self.r
        start = r.pos
        limit = start + self.config.max_pickle_bytes
        max_ops = self.config.max_pickle_ops
        table = _TABLE
        read_byte = r.read_byte
        memo = self.memo
        max_stack = self._max_stack
        max_memo = self.config.max_memo
        ops = 0
        while True:
            p = r._bpos  # Reader.pos and Reader.read_byte, inlined: this loop is the hot path
            offset = self.offset = r._base + p
            if offset > limit:
                raise BoundExceeded("pickle stream exceeds max_pickle_bytes", offset)
            frame_end = self.frame_end
            if frame_end is not None and offset >= frame_end:
                if offset > frame_end:
                    # CPython's C and Python unpicklers disagree on opcodes that straddle a frame's end
                    raise Malformed("an opcode crosses the end of a pickle frame", offset)
                self.frame_end = None
            buf = r._buf
            if p < len(buf):
                code = buf[p]
                r._bpos = p + 1
            else:
                code = read_byte()
            ops += 1
            # fast paths for the most frequent opcodes (same semantics as their op_ handlers)
            if code == 0x94:  # MEMOIZE
                if not self.stack:
                    raise Malformed("pickle stack underflow", offset)
                memo[len(memo)] = self.stack[-1]
                if len(memo) > max_memo:
                    raise BoundExceeded("pickle memo exceeds its bound", offset)
                continue
            if code == 0x71:  # BINPUT
                idx = read_byte()
                if not self.stack:
                    raise Malformed("pickle stack underflow", offset)
                memo[idx] = self.stack[-1]
                continue
            if code == 0x68:  # BINGET
                idx = read_byte()
                if idx not in memo:
                    raise Malformed(f"memo key {idx} read before it was written", offset)
                stack = self.stack
                stack.append(memo[idx])
                if len(stack) > max_stack:
                    raise BoundExceeded("pickle stack exceeds its bound", offset)
                continue
            if code == 0x8C or code == 0x4B:  # SHORT_BINUNICODE, BININT1
                n = read_byte()
                if code == 0x8C:
                    try:
                        value: Any = r.read(n).decode("utf-8", "surrogatepass")
                    except UnicodeDecodeError as exc:
                        raise Malformed("invalid UTF-8 in string operand", offset) from exc
                else:
                    value = n
                stack = self.stack
                stack.append(value)
                if len(stack) > max_stack:
                    raise BoundExceeded("pickle stack exceeds its bound", offset)
                continue
            entry = table[code]
            if entry is None:
                raise Malformed(f"invalid pickle opcode 0x{code:02x}", offset)
            handler, kind = entry
            if kind is None:
                arg = None
            elif kind == "uint1":
                arg = read_byte()
            else:
                arg = self._arg(kind)
            if handler is None:  # STOP
                value = self.pop() if self.stack else None
                if self.metastack:
                    value = Opaque("unbalanced")
                return PickleResult(value, start, r.pos, self.globals, self.persistent)
            handler(self, arg)
            if ops > max_ops:
                raise BoundExceeded("pickle has more opcodes than max_pickle_ops", self.offset)

    # -- opcode handlers (named op_<OPCODE>) ------------------------------------------------------------
    def op_PROTO(self, arg: int) -> None:
        if arg > 5:
            raise Malformed(f"unsupported pickle protocol {arg}", self.offset)

    def op_FRAME(self, arg: int) -> None:
        if self.frame_end is not None:
            raise Malformed("a pickle frame starts before the previous one ends", self.offset)
        self.frame_end = self.r.pos + arg

    def _push_value(self, arg: Any) -> None:
        self.push(arg)

    op_INT = op_BININT = op_BININT1 = op_BININT2 = op_LONG = op_LONG1 = op_LONG4 = _push_value
    op_STRING = op_BINSTRING = op_SHORT_BINSTRING = op_BINBYTES = op_SHORT_BINBYTES = _push_value
    op_BINBYTES8 = op_UNICODE = op_BINUNICODE = op_SHORT_BINUNICODE = op_BINUNICODE8 = _push_value
    op_FLOAT = op_BINFLOAT = _push_value

    def op_BYTEARRAY8(self, arg: Any) -> None:
        self.push(Opaque("bytearray"))

    def op_NONE(self, arg: None) -> None:
        self.push(None)

    def op_NEWTRUE(self, arg: None) -> None:
        self.push(True)

    def op_NEWFALSE(self, arg: None) -> None:
        self.push(False)

    def op_NEXT_BUFFER(self, arg: None) -> None:
        self.push(Opaque("buffer"))

    def op_READONLY_BUFFER(self, arg: None) -> None:
        self.top()

    def op_EMPTY_LIST(self, arg: None) -> None:
        self.push(Box("list"))

    def op_EMPTY_DICT(self, arg: None) -> None:
        self.push(Box("dict"))

    def op_EMPTY_TUPLE(self, arg: None) -> None:
        self.push(Box("tuple"))

    def op_EMPTY_SET(self, arg: None) -> None:
        self.push(Box("set"))

    def op_MARK(self, arg: None) -> None:
        self.metastack.append(self.stack)
        self.stack = []
        if len(self.metastack) > self.config.max_nesting:
            raise BoundExceeded(f"pickle MARK nesting deeper than {self.config.max_nesting}", self.offset)

    def op_LIST(self, arg: None) -> None:
        self.push_nested(Box("list", self.pop_mark()))

    def op_TUPLE(self, arg: None) -> None:
        self.push_nested(Box("tuple", self.pop_mark()))

    def op_FROZENSET(self, arg: None) -> None:
        self.push_nested(Box("set", self.pop_mark()))

    def op_TUPLE1(self, arg: None) -> None:
        self.push_nested(Box("tuple", [self.pop()]))

    def op_TUPLE2(self, arg: None) -> None:
        b = self.pop()
        a = self.pop()
        self.push_nested(Box("tuple", [a, b]))

    def op_TUPLE3(self, arg: None) -> None:
        c = self.pop()
        b = self.pop()
        a = self.pop()
        self.push_nested(Box("tuple", [a, b, c]))

    def op_DICT(self, arg: None) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise Malformed("odd number of items for DICT", self.offset)
        box = Box("dict")
        self._mutate(box, items, pairs=True)
        self.push(box)

    def _mutate(self, target: Any, items: list[Any], pairs: bool) -> None:
        if isinstance(target, Box):
            if pairs:
                for i in range(0, len(items) - 1, 2):
                    if len(target.items) < ITEM_CAP:
                        target.items.append((items[i], items[i + 1]))
                    else:
                        target.truncated = True
                for v in items:
                    if (type(v) is Box or type(v) is Obj) and v.depth >= target.depth:
                        target.depth = v.depth + 1
            else:
                target.extend(items)
            if target.depth > self.config.max_nesting:
                raise BoundExceeded(f"pickle nesting deeper than {self.config.max_nesting}", self.offset)
        elif isinstance(target, Global):
            self._issue(
                "pickle-global-mutation",
                Severity.high,
                f"mutates the imported object {target.full}",
                target.full,
            )
        elif isinstance(target, Obj) and not target.fresh:
            self._stale_mutation(target, "SETITEM/APPEND")
        elif not isinstance(target, Obj):
            raise Malformed("container operation on a scalar", self.offset)

    def op_APPEND(self, arg: None) -> None:
        v = self.pop()
        self._mutate(self.top(), [v], pairs=False)

    def op_APPENDS(self, arg: None) -> None:
        items = self.pop_mark()
        self._mutate(self.top(), items, pairs=False)

    def op_ADDITEMS(self, arg: None) -> None:
        items = self.pop_mark()
        self._mutate(self.top(), items, pairs=False)

    def op_SETITEM(self, arg: None) -> None:
        v = self.pop()
        k = self.pop()
        self._mutate(self.top(), [k, v], pairs=True)

    def op_SETITEMS(self, arg: None) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise Malformed("odd number of items for SETITEMS", self.offset)
        self._mutate(self.top(), items, pairs=True)

    def op_POP(self, arg: None) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_POP_MARK(self, arg: None) -> None:
        self.pop_mark()

    def op_DUP(self, arg: None) -> None:
        self.push(self.top())

    def _put(self, idx: int) -> None:
        if idx < 0:
            raise Malformed("negative memo index", self.offset)
        self.memo[idx] = self.top()
        if len(self.memo) > self.config.max_memo:
            raise BoundExceeded("pickle memo exceeds its bound", self.offset)

    def op_PUT(self, arg: Any) -> None:
        self._put(int(arg))

    op_BINPUT = op_LONG_BINPUT = op_PUT

    def op_MEMOIZE(self, arg: None) -> None:
        self._put(len(self.memo))

    def op_GET(self, arg: Any) -> None:
        idx = int(arg)
        if idx not in self.memo:
            raise Malformed(f"memo key {idx} read before it was written", self.offset)
        self.push(self.memo[idx])

    op_BINGET = op_LONG_BINGET = op_GET

    def op_GLOBAL(self, arg: tuple[str, str]) -> None:
        self.push(self._check_global(arg[0], arg[1]))

    def op_STACK_GLOBAL(self, arg: None) -> None:
        name = self.pop()
        module = self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            self._issue(
                "pickle-unresolved-global",
                Severity.critical,
                "STACK_GLOBAL operands are not plain strings (cannot be resolved statically)",
            )
            self.push(Global("<unresolved>", "<unresolved>"))
            return
        self.push(self._check_global(module, name))

    def op_INST(self, arg: tuple[str, str]) -> None:
        args = self.pop_mark()
        if self.joblib:
            self._no_wrapper_args(Box("tuple", args))
        g = self._check_global(arg[0], arg[1])
        self.push_nested(Obj(g.full, Box("tuple", args)))

    def op_OBJ(self, arg: None) -> None:
        items = self.pop_mark()
        if not items:
            raise Malformed("OBJ without a class", self.offset)
        if self.joblib:
            self._no_wrapper_args(Box("tuple", items[1:]))
        ctor = self._callee(items[0], "OBJ")
        self.push_nested(Obj(ctor, Box("tuple", items[1:])))

    def _no_wrapper_args(self, args: Any) -> None:
        """joblib mode: the wrapper class may only be constructed by NEWOBJ (what joblib writes)."""
        for a in args.items if isinstance(args, Box) else ():
            inner = a.items if isinstance(a, Box) else (a,)
            if any(type(x) is JoblibWrapperClass for x in inner):
                raise Malformed("joblib array wrapper built in a form joblib does not write", self.offset)

    def op_REDUCE(self, arg: None) -> None:
        args = self.pop()
        func = self.pop()
        if self.joblib:
            self._no_wrapper_args(args)
        ctor = self._callee(func, "REDUCE")
        self.push_nested(Obj(ctor, args))

    def op_NEWOBJ(self, arg: None) -> None:
        args = self.pop()
        cls = self.pop()
        if (
            type(cls) is JoblibWrapperClass
            and isinstance(args, Box)
            and args.kind == "tuple"
            and not args.items
        ):
            self.push(Obj(JOBLIB_WRAPPER, args))  # the exact construction joblib writes
            return
        self.push_nested(Obj(self._callee(cls, "NEWOBJ"), args))

    def op_NEWOBJ_EX(self, arg: None) -> None:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        self.push_nested(Obj(self._callee(cls, "NEWOBJ_EX"), Box("tuple", [args, kwargs])))

    def op_BUILD(self, arg: None) -> None:
        state = self.pop()
        target = self.top()
        if isinstance(target, Global):
            self._issue(
                "pickle-global-mutation",
                Severity.high,
                f"BUILD sets attributes on the imported object {target.full}",
                target.full,
            )
            return
        if isinstance(target, Obj):
            if not target.fresh or (target.ctor == "numpy.dtype" and _items(target.args)[2:3] != (True,)):
                self._stale_mutation(target, "BUILD")
            target.state = state
            target.depth = max(target.depth, _depth(state) + 1)
            if target.ctor == JOBLIB_WRAPPER:
                if not self.wrappers:
                    self.issues_at_wrapper = len(self.issues)
                self.wrappers += 1
                if self.joblib:
                    self._joblib_array(target)
        elif not isinstance(target, Box | Opaque):
            raise Malformed("BUILD on a scalar", self.offset)

    def _stale_mutation(self, target: Obj, op: str) -> None:
        self._issue(
            "pickle-shared-mutation",
            Severity.high,
            f"{op} on an object this pickle did not build ({target.ctor} may return a shared object)",
            target.ctor,
        )

    def _ext(self, arg: int) -> None:
        self._issue(
            "pickle-extension-code",
            Severity.critical,
            f"extension-registry code {arg} (copyreg) cannot be resolved statically",
            f"<ext {arg}>",
        )
        self.push(Global("<ext>", str(arg)))

    op_EXT1 = op_EXT2 = op_EXT4 = _ext

    def op_PERSID(self, arg: str) -> None:
        self.persistent.append(arg)
        self.push(Obj("<persistent>", arg, fresh=False))

    def op_BINPERSID(self, arg: None) -> None:
        pid = self.pop()
        if len(self.persistent) < 1_000_000:
            self.persistent.append(plain(pid))
        if isinstance(pid, Box) and len(pid.items) >= 2 and pid.items[0] == "module":
            # torch's legacy format stores module classes as ('module', cls, file, source); its
            # persistent_load returns cls, which was imported (and judged) by an ordinary GLOBAL.
            self.push(pid.items[1])
            return
        self.push_nested(Obj("<persistent>", pid, fresh=False))

    # -- joblib -----------------------------------------------------------------------------------------
    def _joblib_array(self, wrapper: Obj) -> None:
        """Skip (or analyse) the array data joblib.load reads after a wrapper's BUILD, by numpy's rules."""
        if self.frame_end is not None and self.r.pos < self.frame_end:
            raise Malformed(
                "joblib array data inside a pickle frame (joblib reads past the frame)", self.offset
            )
        state = _shallow_dict(wrapper.state)
        if state is None or not set(state) <= _WRAPPER_KEYS or len(state) != len(wrapper.state.items):
            raise Malformed("joblib NumpyArrayWrapper state is not the dict joblib writes", self.offset)
        subclass, dtype, shape = state.get("subclass"), state.get("dtype"), state.get("shape")
        if not isinstance(subclass, Global) or subclass.full not in ("numpy.ndarray", "numpy.memmap"):
            raise Malformed("joblib array subclass is not numpy.ndarray", self.offset)
        if not isinstance(dtype, Obj) or dtype.ctor != "numpy.dtype":
            raise Malformed("joblib array dtype is not a numpy.dtype", self.offset)
        shape = tuple(shape.items) if isinstance(shape, Box) and shape.kind == "tuple" else None
        if shape is None or not all(type(d) is int and d >= 0 for d in shape):
            raise Malformed("joblib array shape is not a tuple of sizes", self.offset)
        itemsize, has_object = _numpy_dtype(dtype, self.offset)
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
        if state.get("numpy_array_alignment_bytes") is not None:
            self.r.skip(self.r.read_byte())
        count = 1
        for d in shape:
            count *= d
        self.r.skip(count * itemsize)
        self.frame_end = None


_WRAPPER_KEYS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)


def _numpy_dtype(dtype: Obj, offset: int) -> tuple[int, bool]:
    """(itemsize, hasobject) as numpy computes them for ``numpy.dtype(*args)`` + ``__setstate__(state)``."""
    real = _real_dtype(dtype, offset, 0)
    return real.itemsize, bool(real.hasobject)


def _real_dtype(dtype: Obj, offset: int, depth: int) -> Any:
    import numpy as np

    if depth > 8:
        raise Malformed("joblib array dtype nested too deeply", offset)
    args = _materialise(dtype.args, offset, depth)
    ok_args = isinstance(args, tuple) and 1 <= len(args) <= 3 and isinstance(args[0], str)
    if not ok_args or not all(isinstance(a, bool) for a in args[1:]):
        raise Malformed("joblib array dtype arguments are not understood", offset)
    try:
        real = np.dtype(args[0], bool(args[1]) if len(args) > 1 else False, True)  # always a private copy
        if dtype.state is not None:
            real.__setstate__(_materialise(dtype.state, offset, depth))
    except (TypeError, ValueError, KeyError) as exc:
        raise Malformed(f"joblib array dtype rejected by numpy ({str(exc)[:80]})", offset) from exc
    return real


def _materialise(v: Any, offset: int, depth: int) -> Any:
    """Plain values of a dtype's arguments/state (nested dtypes of structured arrays built the same way)."""
    if depth > 8:
        raise Malformed("joblib array dtype nested too deeply", offset)
    if isinstance(v, Obj) and v.ctor == "numpy.dtype":
        return _real_dtype(v, offset, depth + 1)
    if isinstance(v, Box):
        if v.truncated:
            raise Malformed("joblib array dtype too large to analyse", offset)
        if v.kind == "dict":
            return {
                _materialise(k, offset, depth + 1): _materialise(x, offset, depth + 1) for k, x in v.items
            }
        items = [_materialise(x, offset, depth + 1) for x in v.items]
        return tuple(items) if v.kind == "tuple" else items
    if v is None or isinstance(v, str | int | bytes | bool | float):
        return v
    raise Malformed("joblib array dtype is not understood", offset)


def _build_table() -> list[tuple[Callable[[PickleAnalyzer, Any], None] | None, str | None] | None]:
    table: list[tuple[Callable[[PickleAnalyzer, Any], None] | None, str | None] | None] = [None] * 256
    for code, (name, kind) in _ARG_KINDS.items():
        handler = None if name == "STOP" else getattr(PickleAnalyzer, f"op_{name}")
        table[code] = (handler, kind)
    return table


_TABLE = _build_table()


@functools.lru_cache(maxsize=4096)
def _valid_dotted(text: str) -> bool:
    return bool(text) and len(text) < 1024 and all(part.isidentifier() for part in text.split("."))


def _shallow_dict(v: Any) -> dict[Any, Any] | None:
    if not isinstance(v, Box) or v.kind != "dict":
        return None
    return {k: val for k, val in v.items if isinstance(k, str)}


def _items(v: Any) -> tuple[Any, ...]:
    return tuple(v.items) if isinstance(v, Box) and v.kind == "tuple" else ()


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


__all__ = [
    "Box",
    "Global",
    "Obj",
    "Opaque",
    "PickleAnalyzer",
    "PickleResult",
    "analyze_pickle",
    "looks_like_pickle",
    "plain",
]

"""The opcode walk: simulate stack and memo of one pickle stream, judge every import, call and mutation.

One class holds the main loop and one handler per opcode (``op_<NAME>``, dispatched through a 256-entry
table): this module is over 400 lines because the opcode handlers are the walk's semantics and read best next
to the loop that inlines the most frequent of them. Operand decoding, the simulated values and joblib's array
layout live beside it (:mod:`.operands`, :mod:`.values`, :mod:`.joblib`).
"""

from __future__ import annotations

import functools
import pickletools
from collections.abc import Callable
from typing import Any

from bastion.scan._allowlist import (
    SCORERS,
    TORCHSCRIPT_ONLY,
    _is_allowed,
    canonical,
    is_known_dangerous,
    normalise_extra,
)
from bastion.scan._calls import (
    JUDGED,
    METADATA_REQUEST,
    NOT_DATA,
    RECONSTRUCTOR,
    judge_call,
    judge_scorer_state,
    literal_dtype,
)
from bastion.scan._io import BoundExceeded, Malformed, Reader
from bastion.scan._model import Issue, ScanConfig, Severity
from bastion.scan._pickle.joblib import array_layout
from bastion.scan._pickle.operands import ARG_KINDS, read_arg
from bastion.scan._pickle.values import (
    ITEM_CAP,
    JOBLIB_WRAPPER,
    Box,
    Global,
    JoblibWrapperClass,
    Obj,
    Opaque,
    PickleResult,
    depth_of,
    plain,
    tuple_items,
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

    def _judge(self, func: Any, args: Any, kwargs: Any, op: str) -> None:
        """The argument rules of :mod:`bastion.scan._calls` for a call of an allow-listed global."""
        if not isinstance(func, Global):
            return
        key = canonical(func.module, func.name)
        if key not in JUDGED:
            return
        items = plain(args)
        named = plain(kwargs) if kwargs is not None else {}
        reason = judge_call(
            key,
            items if isinstance(items, tuple) else (items,),
            named if isinstance(named, dict) else {"?": named},
            op=op,
            size=self.r.src.size,
            key_of=_static_key,
            dtype_of=_static_dtype,
            is_tensor_type=_named_tensor,
        )
        if reason is not None:
            self._issue("pickle-unsafe-call", Severity.high, reason, func.full)

    def _made(self, func: Any, args: Any, obj: Obj) -> Obj:
        """``obj`` as the result of calling ``func``: marked when it is a scikit-learn scorer."""
        if isinstance(func, Global):
            key = canonical(func.module, func.name)
            if key in SCORERS:
                obj.scorer = True
            elif key == RECONSTRUCTOR:
                first = tuple_items(args)[:1]
                obj.scorer = bool(first) and _static_key(first[0]) in SCORERS
        return obj

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
                room = ITEM_CAP - len(target.items)
                npairs = len(items) // 2
                if room > 0:
                    kept = items[: 2 * min(room, npairs)]
                    target.items.extend(zip(kept[::2], kept[1::2], strict=True))
                if npairs > room:
                    target.truncated = True
                depth = target.depth
                for v in items:
                    t = type(v)
                    if (t is Box or t is Obj) and v.depth >= depth:
                        depth = v.depth + 1
                target.depth = depth
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
            self._no_wrapper_args(Box("tuple", list(args)))
        g = self._check_global(arg[0], arg[1])
        self._judge(g, Box("tuple", list(args)), None, "INST")
        self.push_nested(self._made(g, None, Obj(g.full, Box("tuple", args))))

    def op_OBJ(self, arg: None) -> None:
        items = self.pop_mark()
        if not items:
            raise Malformed("OBJ without a class", self.offset)
        if self.joblib:
            self._no_wrapper_args(Box("tuple", items[1:]))
        ctor = self._callee(items[0], "OBJ")
        self._judge(items[0], Box("tuple", items[1:]), None, "OBJ")
        self.push_nested(self._made(items[0], None, Obj(ctor, Box("tuple", items[1:]))))

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
        self._judge(func, args, None, "REDUCE")
        self.push_nested(self._made(func, args, Obj(ctor, args)))

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
        ctor = self._callee(cls, "NEWOBJ")
        self._judge(cls, args, None, "NEWOBJ")
        self.push_nested(self._made(cls, None, Obj(ctor, args)))

    def op_NEWOBJ_EX(self, arg: None) -> None:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        ctor = self._callee(cls, "NEWOBJ_EX")
        self._judge(cls, args, kwargs, "NEWOBJ_EX")
        self.push_nested(self._made(cls, None, Obj(ctor, Box("tuple", [args, kwargs]))))

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
            if not target.fresh or (
                target.ctor == "numpy.dtype" and tuple_items(target.args)[2:3] != (True,)
            ):
                self._stale_mutation(target, "BUILD")
            if target.scorer:
                self._judge_scorer(target, state)
            target.state = state
            target.depth = max(target.depth, depth_of(state) + 1)
            if target.ctor == JOBLIB_WRAPPER:
                if not self.wrappers:
                    self.issues_at_wrapper = len(self.issues)
                self.wrappers += 1
                if self.joblib:
                    self._joblib_array(target)
        elif not isinstance(target, Box | Opaque):
            raise Malformed("BUILD on a scalar", self.offset)

    def _judge_scorer(self, target: Obj, state: Any) -> None:
        complete = isinstance(state, Box) and state.kind == "dict" and not state.truncated
        reason = judge_scorer_state(
            state.items if complete else None,
            key_of=_static_key,
            data_of=_static_data,
            is_request=_static_request,
        )
        if reason is not None:
            self._issue("pickle-unsafe-call", Severity.high, reason, target.ctor)

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
    # -- joblib -----------------------------------------------------------------------------------------
    def _joblib_array(self, wrapper: Obj) -> None:
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
        handler = None if name == "STOP" else getattr(PickleAnalyzer, f"op_{name}")
        table[code] = (handler, kind)
    return table


_TABLE = _build_table()


def _static_key(v: Any) -> str | None:
    return canonical(v.module, v.name) if isinstance(v, Global) else None


def _static_dtype(v: Any) -> Any:
    """The dtype a simulated argument denotes (a literal, a numpy scalar class, ``numpy.dtype('f8')``)."""
    if isinstance(v, Obj) and v.ctor == "numpy.dtype":
        v = tuple_items(v.args)[:1][0] if tuple_items(v.args) else None
    if isinstance(v, Global):
        key = canonical(v.module, v.name)
        if key.startswith("numpy") and _is_allowed(v.module, v.name, frozenset()):
            import numpy as np

            from bastion.scan._unpickler import resolve

            try:
                return np.dtype(resolve(key))
            except Exception:
                return None
        return None
    return literal_dtype(v)


_LITERAL_TYPES = (str, int, float, bool, bytes, type(None))
_REQUEST_CTOR = METADATA_REQUEST.replace(":", ".")


def _static_data(v: Any, depth: int = 0) -> Any:
    """The plain data a simulated value denotes (literals, complete containers of them), else NOT_DATA."""
    if type(v) in _LITERAL_TYPES:
        return v
    if not isinstance(v, Box) or v.truncated or depth > 8 or v.kind == "set":
        return NOT_DATA
    if v.kind == "dict":
        out: dict[Any, Any] = {}
        for k, x in v.items:
            value = _static_data(x, depth + 1)
            if type(k) not in _LITERAL_TYPES or value is NOT_DATA:
                return NOT_DATA
            out[k] = value
        return out
    items = [_static_data(x, depth + 1) for x in v.items]
    if any(x is NOT_DATA for x in items):
        return NOT_DATA
    return tuple(items) if v.kind == "tuple" else items


def _static_request(v: Any) -> bool:
    return isinstance(v, Obj) and v.fresh and v.ctor == _REQUEST_CTOR


def _named_tensor(v: Any) -> bool:
    return True  # the static reader judges the class by its name (TENSOR_TYPES)


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


__all__ = ["PickleAnalyzer", "analyze_pickle", "looks_like_pickle"]

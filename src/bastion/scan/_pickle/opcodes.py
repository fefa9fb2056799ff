"""The opcode semantics of the static pickle walk: one function per opcode (``op_<NAME>(walk, operand)``).

Each handler simulates what CPython's unpickler does with the stack, the MARK stack and the memo, on the
simulated values of :mod:`.values`, and hands imports, calls and mutations to the call policy
(:mod:`.policy`). The walk's loop (:mod:`.analyzer`) dispatches to them through a 256-entry table and inlines
the most frequent opcodes with the same semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.scan._io import BoundExceeded, Malformed
from bastion.scan._model import Severity
from bastion.scan._pickle.policy import (
    callee,
    check_global,
    judge,
    judge_scorer,
    made,
    report,
    stale_mutation,
)
from bastion.scan._pickle.values import (
    ITEM_CAP,
    JOBLIB_WRAPPER,
    Box,
    Global,
    JoblibWrapperClass,
    Obj,
    Opaque,
    depth_of,
    plain,
    tuple_items,
)

if TYPE_CHECKING:
    from bastion.scan._pickle.analyzer import PickleAnalyzer


def op_PROTO(walk: PickleAnalyzer, arg: int) -> None:
    if arg > 5:
        raise Malformed(f"unsupported pickle protocol {arg}", walk.offset)


def op_FRAME(walk: PickleAnalyzer, arg: int) -> None:
    if walk.frame_end is not None:
        raise Malformed("a pickle frame starts before the previous one ends", walk.offset)
    walk.frame_end = walk.r.pos + arg


def push_value(walk: PickleAnalyzer, arg: Any) -> None:
    walk.push(arg)


op_INT = op_BININT = op_BININT1 = op_BININT2 = op_LONG = op_LONG1 = op_LONG4 = push_value
op_STRING = op_BINSTRING = op_SHORT_BINSTRING = op_BINBYTES = op_SHORT_BINBYTES = push_value
op_BINBYTES8 = op_UNICODE = op_BINUNICODE = op_SHORT_BINUNICODE = op_BINUNICODE8 = push_value
op_FLOAT = op_BINFLOAT = push_value


def op_BYTEARRAY8(walk: PickleAnalyzer, arg: Any) -> None:
    walk.push(Opaque("bytearray"))


def op_NONE(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(None)


def op_NEWTRUE(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(True)


def op_NEWFALSE(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(False)


def op_NEXT_BUFFER(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(Opaque("buffer"))


def op_READONLY_BUFFER(walk: PickleAnalyzer, arg: None) -> None:
    walk.top()


def op_EMPTY_LIST(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(Box("list"))


def op_EMPTY_DICT(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(Box("dict"))


def op_EMPTY_TUPLE(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(Box("tuple"))


def op_EMPTY_SET(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(Box("set"))


def op_MARK(walk: PickleAnalyzer, arg: None) -> None:
    walk.metastack.append(walk.stack)
    walk.stack = []
    if len(walk.metastack) > walk.config.max_nesting:
        raise BoundExceeded(f"pickle MARK nesting deeper than {walk.config.max_nesting}", walk.offset)


def op_LIST(walk: PickleAnalyzer, arg: None) -> None:
    walk.push_nested(Box("list", walk.pop_mark()))


def op_TUPLE(walk: PickleAnalyzer, arg: None) -> None:
    walk.push_nested(Box("tuple", walk.pop_mark()))


def op_FROZENSET(walk: PickleAnalyzer, arg: None) -> None:
    walk.push_nested(Box("set", walk.pop_mark()))


def op_TUPLE1(walk: PickleAnalyzer, arg: None) -> None:
    walk.push_nested(Box("tuple", [walk.pop()]))


def op_TUPLE2(walk: PickleAnalyzer, arg: None) -> None:
    b = walk.pop()
    first = walk.pop()
    walk.push_nested(Box("tuple", [first, b]))


def op_TUPLE3(walk: PickleAnalyzer, arg: None) -> None:
    c = walk.pop()
    b = walk.pop()
    first = walk.pop()
    walk.push_nested(Box("tuple", [first, b, c]))


def op_DICT(walk: PickleAnalyzer, arg: None) -> None:
    items = walk.pop_mark()
    if len(items) % 2:
        raise Malformed("odd number of items for DICT", walk.offset)
    box = Box("dict")
    mutate(walk, box, items, pairs=True)
    walk.push(box)


def mutate(walk: PickleAnalyzer, target: Any, items: list[Any], pairs: bool) -> None:
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
        if target.depth > walk.config.max_nesting:
            raise BoundExceeded(f"pickle nesting deeper than {walk.config.max_nesting}", walk.offset)
    elif isinstance(target, Global):
        report(
            walk,
            "pickle-global-mutation",
            Severity.high,
            f"mutates the imported object {target.full}",
            target.full,
        )
    elif isinstance(target, Obj) and not target.fresh:
        stale_mutation(walk, target, "SETITEM/APPEND")
    elif not isinstance(target, Obj):
        raise Malformed("container operation on a scalar", walk.offset)


def op_APPEND(walk: PickleAnalyzer, arg: None) -> None:
    v = walk.pop()
    mutate(walk, walk.top(), [v], pairs=False)


def op_APPENDS(walk: PickleAnalyzer, arg: None) -> None:
    items = walk.pop_mark()
    mutate(walk, walk.top(), items, pairs=False)


def op_ADDITEMS(walk: PickleAnalyzer, arg: None) -> None:
    items = walk.pop_mark()
    mutate(walk, walk.top(), items, pairs=False)


def op_SETITEM(walk: PickleAnalyzer, arg: None) -> None:
    v = walk.pop()
    k = walk.pop()
    mutate(walk, walk.top(), [k, v], pairs=True)


def op_SETITEMS(walk: PickleAnalyzer, arg: None) -> None:
    items = walk.pop_mark()
    if len(items) % 2:
        raise Malformed("odd number of items for SETITEMS", walk.offset)
    mutate(walk, walk.top(), items, pairs=True)


def op_POP(walk: PickleAnalyzer, arg: None) -> None:
    if walk.stack:
        walk.stack.pop()
    else:
        walk.pop_mark()


def op_POP_MARK(walk: PickleAnalyzer, arg: None) -> None:
    walk.pop_mark()


def op_DUP(walk: PickleAnalyzer, arg: None) -> None:
    walk.push(walk.top())


def put(walk: PickleAnalyzer, idx: int) -> None:
    if idx < 0:
        raise Malformed("negative memo index", walk.offset)
    walk.memo[idx] = walk.top()
    if len(walk.memo) > walk.config.max_memo:
        raise BoundExceeded("pickle memo exceeds its bound", walk.offset)


def op_PUT(walk: PickleAnalyzer, arg: Any) -> None:
    put(walk, int(arg))


op_BINPUT = op_LONG_BINPUT = op_PUT


def op_MEMOIZE(walk: PickleAnalyzer, arg: None) -> None:
    put(walk, len(walk.memo))


def op_GET(walk: PickleAnalyzer, arg: Any) -> None:
    idx = int(arg)
    if idx not in walk.memo:
        raise Malformed(f"memo key {idx} read before it was written", walk.offset)
    walk.push(walk.memo[idx])


op_BINGET = op_LONG_BINGET = op_GET


def op_GLOBAL(walk: PickleAnalyzer, arg: tuple[str, str]) -> None:
    walk.push(check_global(walk, arg[0], arg[1]))


def op_STACK_GLOBAL(walk: PickleAnalyzer, arg: None) -> None:
    name = walk.pop()
    module = walk.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        report(
            walk,
            "pickle-unresolved-global",
            Severity.critical,
            "STACK_GLOBAL operands are not plain strings (cannot be resolved statically)",
        )
        walk.push(Global("<unresolved>", "<unresolved>"))
        return
    walk.push(check_global(walk, module, name))


def op_INST(walk: PickleAnalyzer, arg: tuple[str, str]) -> None:
    args = walk.pop_mark()
    if walk.joblib:
        no_wrapper_args(walk, Box("tuple", list(args)))
    g = check_global(walk, arg[0], arg[1])
    judge(walk, g, Box("tuple", list(args)), None, "INST")
    walk.push_nested(made(g, None, Obj(g.full, Box("tuple", args))))


def op_OBJ(walk: PickleAnalyzer, arg: None) -> None:
    items = walk.pop_mark()
    if not items:
        raise Malformed("OBJ without a class", walk.offset)
    if walk.joblib:
        no_wrapper_args(walk, Box("tuple", items[1:]))
    ctor = callee(walk, items[0], "OBJ")
    judge(walk, items[0], Box("tuple", items[1:]), None, "OBJ")
    walk.push_nested(made(items[0], None, Obj(ctor, Box("tuple", items[1:]))))


def no_wrapper_args(walk: PickleAnalyzer, args: Any) -> None:
    """joblib mode: the wrapper class may only be constructed by NEWOBJ (what joblib writes)."""
    for item in args.items if isinstance(args, Box) else ():
        inner = item.items if isinstance(item, Box) else (item,)
        if any(type(x) is JoblibWrapperClass for x in inner):
            raise Malformed("joblib array wrapper built in a form joblib does not write", walk.offset)


def op_REDUCE(walk: PickleAnalyzer, arg: None) -> None:
    args = walk.pop()
    func = walk.pop()
    if walk.joblib:
        no_wrapper_args(walk, args)
    ctor = callee(walk, func, "REDUCE")
    judge(walk, func, args, None, "REDUCE")
    walk.push_nested(made(func, args, Obj(ctor, args)))


def op_NEWOBJ(walk: PickleAnalyzer, arg: None) -> None:
    args = walk.pop()
    cls = walk.pop()
    if type(cls) is JoblibWrapperClass and isinstance(args, Box) and args.kind == "tuple" and not args.items:
        walk.push(Obj(JOBLIB_WRAPPER, args))  # the exact construction joblib writes
        return
    ctor = callee(walk, cls, "NEWOBJ")
    judge(walk, cls, args, None, "NEWOBJ")
    walk.push_nested(made(cls, None, Obj(ctor, args)))


def op_NEWOBJ_EX(walk: PickleAnalyzer, arg: None) -> None:
    kwargs = walk.pop()
    args = walk.pop()
    cls = walk.pop()
    ctor = callee(walk, cls, "NEWOBJ_EX")
    judge(walk, cls, args, kwargs, "NEWOBJ_EX")
    walk.push_nested(made(cls, None, Obj(ctor, Box("tuple", [args, kwargs]))))


def op_BUILD(walk: PickleAnalyzer, arg: None) -> None:
    state = walk.pop()
    target = walk.top()
    if isinstance(target, Global):
        report(
            walk,
            "pickle-global-mutation",
            Severity.high,
            f"BUILD sets attributes on the imported object {target.full}",
            target.full,
        )
        return
    if isinstance(target, Obj):
        if not target.fresh or (target.ctor == "numpy.dtype" and tuple_items(target.args)[2:3] != (True,)):
            stale_mutation(walk, target, "BUILD")
        if target.scorer:
            judge_scorer(walk, target, state)
        target.state = state
        target.depth = max(target.depth, depth_of(state) + 1)
        if target.ctor == JOBLIB_WRAPPER:
            if not walk.wrappers:
                walk.issues_at_wrapper = len(walk.issues)
            walk.wrappers += 1
            if walk.joblib:
                walk.joblib_array(target)
    elif not isinstance(target, Box | Opaque):
        raise Malformed("BUILD on a scalar", walk.offset)


def ext(walk: PickleAnalyzer, arg: int) -> None:
    report(
        walk,
        "pickle-extension-code",
        Severity.critical,
        f"extension-registry code {arg} (copyreg) cannot be resolved statically",
        f"<ext {arg}>",
    )
    walk.push(Global("<ext>", str(arg)))


op_EXT1 = op_EXT2 = op_EXT4 = ext


def op_PERSID(walk: PickleAnalyzer, arg: str) -> None:
    walk.persistent.append(arg)
    walk.push(Obj("<persistent>", arg, fresh=False))


def op_BINPERSID(walk: PickleAnalyzer, arg: None) -> None:
    pid = walk.pop()
    if len(walk.persistent) < 1_000_000:
        walk.persistent.append(plain(pid))
    if isinstance(pid, Box) and len(pid.items) >= 2 and pid.items[0] == "module":
        # torch's legacy format stores module classes as ('module', cls, file, source); its
        # persistent_load returns cls, which was imported (and judged) by an ordinary GLOBAL.
        walk.push(pid.items[1])
        return
    walk.push_nested(Obj("<persistent>", pid, fresh=False))

"""The call policy of the static pickle walk, and its findings.

Every import (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) is judged against the allow-list, every call must target
an imported global and meets the argument rules of :mod:`bastion.scan._calls` (the restricted unpickler asks
the same rules on the real values), a scikit-learn scorer's ``BUILD`` state is judged, and mutations of
objects this pickle did not build are findings. The functions take the walk
(:class:`.analyzer.PickleAnalyzer`) whose findings they append to.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from bastion.scan._allowlist import (
    SCORERS,
    TORCHSCRIPT_ONLY,
    _is_allowed,
    canonical,
    is_known_dangerous,
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
from bastion.scan._io import Malformed
from bastion.scan._model import Issue, Severity
from bastion.scan._pickle.values import (
    JOBLIB_WRAPPER,
    Box,
    Global,
    JoblibWrapperClass,
    Obj,
    plain,
    tuple_items,
)

if TYPE_CHECKING:
    from bastion.scan._pickle.analyzer import PickleAnalyzer


def report(
    walk: PickleAnalyzer, rule: str, severity: Severity, message: str, callable_: str | None = None
) -> None:
    if len(walk.issues) < 1000:
        walk.issues.append(Issue(rule, severity, message, walk.member, callable_, walk.offset))


def check_global(walk: PickleAnalyzer, module: str, name: str) -> Global:
    if not valid_dotted(module) or not valid_dotted(name):
        # find_class could not import this: the load fails here (text that merely starts like a pickle)
        raise Malformed(f"invalid global name {module[:40]!r} {name[:40]!r}", walk.offset)
    full = f"{module}.{name}"
    walk.globals.append(full)
    if walk.torchscript and (
        module.split(".", 1)[0] == "__torch__" or f"{module}:{name}" in TORCHSCRIPT_ONLY
    ):
        # classes compiled from the archive's TorchScript code and torch.jit._pickle helpers:
        # torch.jit.load's C++ unpickler resolves them itself (pickle cannot import a __torch__ module)
        return Global(module, name)
    if walk.joblib and full == JOBLIB_WRAPPER:
        return JoblibWrapperClass(module, name)
    if not _is_allowed(module, name, walk.extra):
        if is_known_dangerous(module, name):
            report(
                walk, "pickle-dangerous-global", Severity.critical, f"imports dangerous callable {full}", full
            )
        else:
            report(walk, "pickle-global-not-allowed", Severity.high, f"imports {full} (not allowed)", full)
    return Global(module, name)


def callee(walk: PickleAnalyzer, v: Any, op: str) -> str:
    if type(v) is JoblibWrapperClass:
        raise Malformed("joblib array wrapper built in a form joblib does not write", walk.offset)
    if isinstance(v, Global):
        return v.full
    report(
        walk,
        "pickle-unresolved-call",
        Severity.high,
        f"{op} calls a computed value ({type(v).__name__}), not an imported global",
    )
    return f"<{type(v).__name__}>"


def judge(walk: PickleAnalyzer, func: Any, args: Any, kwargs: Any, op: str) -> None:
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
        size=walk.r.src.size,
        key_of=static_key,
        dtype_of=static_dtype,
        is_tensor_type=named_tensor,
    )
    if reason is not None:
        report(walk, "pickle-unsafe-call", Severity.high, reason, func.full)


def made(func: Any, args: Any, obj: Obj) -> Obj:
    """``obj`` as the result of calling ``func``: marked when it is a scikit-learn scorer."""
    if isinstance(func, Global):
        key = canonical(func.module, func.name)
        if key in SCORERS:
            obj.scorer = True
        elif key == RECONSTRUCTOR:
            first = tuple_items(args)[:1]
            obj.scorer = bool(first) and static_key(first[0]) in SCORERS
    return obj


def judge_scorer(walk: PickleAnalyzer, target: Obj, state: Any) -> None:
    complete = isinstance(state, Box) and state.kind == "dict" and not state.truncated
    reason = judge_scorer_state(
        state.items if complete else None,
        key_of=static_key,
        data_of=static_data,
        is_request=static_request,
    )
    if reason is not None:
        report(walk, "pickle-unsafe-call", Severity.high, reason, target.ctor)


def stale_mutation(walk: PickleAnalyzer, target: Obj, op: str) -> None:
    report(
        walk,
        "pickle-shared-mutation",
        Severity.high,
        f"{op} on an object this pickle did not build ({target.ctor} may return a shared object)",
        target.ctor,
    )


def static_key(v: Any) -> str | None:
    return canonical(v.module, v.name) if isinstance(v, Global) else None


def static_dtype(v: Any) -> Any:
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


def static_data(v: Any, depth: int = 0) -> Any:
    """The plain data a simulated value denotes (literals, complete containers of them), else NOT_DATA."""
    if type(v) in _LITERAL_TYPES:
        return v
    if not isinstance(v, Box) or v.truncated or depth > 8 or v.kind == "set":
        return NOT_DATA
    if v.kind == "dict":
        out: dict[Any, Any] = {}
        for k, x in v.items:
            value = static_data(x, depth + 1)
            if type(k) not in _LITERAL_TYPES or value is NOT_DATA:
                return NOT_DATA
            out[k] = value
        return out
    items = [static_data(x, depth + 1) for x in v.items]
    if any(x is NOT_DATA for x in items):
        return NOT_DATA
    return tuple(items) if v.kind == "tuple" else items


def static_request(v: Any) -> bool:
    return isinstance(v, Obj) and v.fresh and v.ctor == _REQUEST_CTOR


def named_tensor(v: Any) -> bool:
    return True  # the static reader judges the class by its name (TENSOR_TYPES)


@functools.lru_cache(maxsize=4096)
def valid_dotted(text: str) -> bool:
    return bool(text) and len(text) < 1024 and all(part.isidentifier() for part in text.split("."))


__all__ = [
    "callee",
    "check_global",
    "judge",
    "judge_scorer",
    "made",
    "named_tensor",
    "report",
    "stale_mutation",
    "static_data",
    "static_dtype",
    "static_key",
    "static_request",
    "valid_dotted",
]

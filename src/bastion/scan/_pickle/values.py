"""The values the static pickle walk simulates: imported globals, containers, call results, opaque data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
        """``items`` is taken over (callers hand in a list nobody else holds): no copy on the hot path."""
        self.kind = kind
        self.truncated = False
        depth = 1
        if items:
            for it in items:
                t = type(it)
                if t is Box or t is Obj:
                    d = it.depth + 1
                    if d > depth:
                        depth = d
            if len(items) > ITEM_CAP:
                self.truncated = True
                items = items[:ITEM_CAP]
            self.items: list[Any] = items
        else:
            self.items = []
        self.depth = depth

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
    """The result of a call (or persistent load) in the pickle; ``fresh`` when built by this pickle;
    ``scorer`` when it is a scikit-learn scorer (its ``BUILD`` state is judged)."""

    __slots__ = ("args", "ctor", "depth", "fresh", "scorer", "state")

    def __init__(self, ctor: str, args: Any = None, *, fresh: bool = True) -> None:
        self.ctor = ctor
        self.args = args
        self.state: Any = None
        self.depth = depth_of(args) + 1
        self.fresh = fresh
        self.scorer = False


class JoblibWrapperClass(Global):
    """joblib's ``NumpyArrayWrapper`` class in a joblib reading: only ``NEWOBJ`` on it is understood."""

    __slots__ = ()


class Opaque:
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


def depth_of(v: Any) -> int:
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


def shallow_dict(v: Any) -> dict[Any, Any] | None:
    if not isinstance(v, Box) or v.kind != "dict":
        return None
    return {k: val for k, val in v.items if isinstance(k, str)}


def tuple_items(v: Any) -> tuple[Any, ...]:
    return tuple(v.items) if isinstance(v, Box) and v.kind == "tuple" else ()


__all__ = [
    "ITEM_CAP",
    "JOBLIB_WRAPPER",
    "STR_CAP",
    "Box",
    "Global",
    "JoblibWrapperClass",
    "Obj",
    "Opaque",
    "PickleResult",
    "depth_of",
    "plain",
    "shallow_dict",
    "tuple_items",
]

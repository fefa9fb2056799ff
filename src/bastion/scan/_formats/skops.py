"""skops archives: judge every type and function ``schema.json`` names, without importing any of them.

A ``.skops`` file is a zip whose ``schema.json`` is a tree of nodes, each with ``__class__``, ``__module__``
and ``__loader__``. At load time skops imports ``__module__`` and takes ``__class__`` from it: an
``ObjectNode`` builds an instance, a ``TypeNode`` or ``FunctionNode`` returns the object itself (so
``FunctionTransformer(func=os.system)`` carries ``posix.system`` as a ``TypeNode``), a
``ConstructorFromReduceNode`` calls the class, ``PartialNode``/``OperatorFuncNode`` build
``functools.partial`` and ``operator.*`` callables, and a ``MethodNode`` does ``getattr(obj, name)``.
The whole tree is walked (bounded) and every reference is judged by the pickle allow-list; ``.npy``
members are analysed by the scanner like any other member (object arrays as pickles).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bastion.scan._allowlist import _is_allowed, is_known_dangerous
from bastion.scan._model import Severity
from bastion.scan._numpy_math import NUMPY_ELEMENTWISE

AddIssue = Callable[..., None]

MAX_NODES = 5_000_000

#: loaders whose (module, class) is imported and used (instance, constructor call or the object itself).
_TYPED_LOADERS = frozenset(
    {
        "DictNode",
        "DefaultDictNode",
        "ListNode",
        "SetNode",
        "TupleNode",
        "BytesNode",
        "BytearrayNode",
        "SliceNode",
        "FunctionNode",
        "TypeNode",
        "ObjectNode",
        "ConstructorFromReduceNode",
        "ReduceNode",
        "TreeNode",
        "LossNode",
        "SGDNode",
        "NdArrayNode",
        "MaskedArrayNode",
        "RandomStateNode",
        "RandomGeneratorNode",
        "DTypeNode",
        "SparseMatrixNode",
        "_DictWithDeprecatedKeysNode",
        "BunchNode",
    }
)
#: loaders that never import their (module, class): json.loads of a literal, or a reference to a node.
_UNTYPED_LOADERS = frozenset({"JsonNode", "CachedNode"})
#: loaders that build a callable from other nodes: always an execution primitive at predict time.
_CALLABLE_LOADERS = {"PartialNode": "functools.partial", "OperatorFuncNode": "operator"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def looks_like_skops_schema(doc: Any) -> bool:
    """Whether a parsed ``schema.json`` has skops' shape (a root node plus protocol/version metadata)."""
    if not isinstance(doc, dict):
        return False
    if "__loader__" in doc:
        return True
    return ("_skops_version" in doc or "protocol" in doc) and ("__class__" in doc or "__module__" in doc)


def _allowed_callable(module: str, name: str, extra: frozenset[str]) -> bool:
    if _is_allowed(module, name, extra):
        return True
    return module == "numpy" and name in NUMPY_ELEMENTWISE


def check_skops_schema(doc: Any, add: AddIssue, *, extra: frozenset[str] = frozenset()) -> int:
    """Flag every reference in the schema tree that is not on the allow-list; returns the nodes seen."""
    todo: list[tuple[Any, str]] = [(doc, "$")]
    seen = 0
    while todo:
        node, where = todo.pop()
        seen += 1
        if seen > MAX_NODES:
            add("skops-too-large", Severity.high, f"skops schema has more than {MAX_NODES} nodes")
            return seen
        if isinstance(node, list):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        todo.extend((v, f"{where}.{k}") for k, v in node.items())
        if "__loader__" not in node and "__module__" not in node and "__class__" not in node:
            continue
        _check_node(node, where, add, extra)
    return seen


def _check_node(node: dict[str, Any], where: str, add: AddIssue, extra: frozenset[str]) -> None:
    loader, module, cls = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    if not isinstance(loader, str):
        add("skops-malformed-node", Severity.high, f"skops node at {where[:200]} has no loader")
        return
    if loader in _UNTYPED_LOADERS:
        return
    if not isinstance(module, str) or not isinstance(cls, str):
        add("skops-malformed-node", Severity.high, f"skops {loader} at {where[:200]} names no type")
        return
    ref = f"{module}.{cls}"
    if not _IDENT.fullmatch(module) or not _IDENT.fullmatch(cls):
        add("skops-malformed-node", Severity.high, f"skops {loader} at {where[:200]} names {ref[:120]!r}")
        return
    if loader in _CALLABLE_LOADERS:
        what = ref if loader == "OperatorFuncNode" else _CALLABLE_LOADERS[loader]
        add("skops-dangerous-callable", Severity.critical, f"{loader} at {where[:200]} builds {what}", what)
        return
    if loader == "MethodNode":
        content = node.get("content")
        func = content.get("func") if isinstance(content, dict) else None
        target = f"{ref}.{func}" if isinstance(func, str) else ref
        sev = Severity.critical if is_known_dangerous(module, cls) else Severity.high
        add("skops-method-reference", sev, f"MethodNode at {where[:200]} binds {target[:160]}", target)
        return
    if loader not in _TYPED_LOADERS:
        add(
            "skops-unknown-loader",
            Severity.high,
            f"unknown skops loader {loader[:60]!r} at {where[:200]}",
            ref,
        )
        return
    ok = (
        _allowed_callable(module, cls, extra)
        if loader in ("FunctionNode", "TypeNode")
        else _is_allowed(module, cls, extra)
    )
    if ok:
        return
    if is_known_dangerous(module, cls):
        add("skops-dangerous-type", Severity.critical, f"{loader} at {where[:200]} references {ref}", ref)
    else:
        add(
            "skops-type-not-allowed",
            Severity.high,
            f"{loader} at {where[:200]} references {ref} (not allowed)",
            ref,
        )


__all__ = ["check_skops_schema", "looks_like_skops_schema"]

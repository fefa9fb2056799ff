"""Chat templates (Jinja, rendered by some runtimes) judged for escapes to Python internals.

A template is parsed with Jinja itself (``jinja2`` when installed; parsing executes nothing) and its tree is
judged: attribute names starting with ``_``; string constants holding ``__`` (also when written as escapes);
subscripts or attribute filters whose key is built from strings at render time (``"%c%c"|format(95,95)``,
``'_'~'_cla'~…``, ``join``/``replace``…, directly or through ``{% set %}`` variables); any attribute or item
access on Jinja's globals (``cycler``, ``joiner``, ``namespace``, ``lipsum``, ``range``, ``dict``, ``self``);
``loop`` beyond its documented attributes. A template Jinja cannot parse is refused too. Without ``jinja2``, a
regular expression over the text (a weaker check) is used.

This is a screen, not a sandbox: runtimes must render chat templates with
``jinja2.sandbox.ImmutableSandboxedEnvironment`` (as Hugging Face transformers does); a plain
``jinja2.Environment`` runs whatever a template reaches.
"""

from __future__ import annotations

import re
from typing import Any

_TEMPLATE_RISK = re.compile(
    r"__\w*__|\battr\s*\(|['\"]_['\"]\s*~|~\s*['\"]_|\bos\.|popen|\beval\b|\bexec\b|\bimport\b|\bglobals\b"
)
# the fallback without jinja2: also format-built names, escaped underscores, Jinja's globals
_FALLBACK_RISK = re.compile(
    r"%c|\\x5f|\\u005f|\\137|\|\s*format\b|\b(cycler|joiner|lipsum|namespace|self|range|dict)\s*[.\[]"
    r"|\[[^\]]*~[^\]]*\]"
)
_GLOBALS = frozenset({"cycler", "joiner", "namespace", "lipsum", "range", "dict", "self"})
_LOOP_ATTRS = frozenset(
    {
        "index",
        "index0",
        "revindex",
        "revindex0",
        "first",
        "last",
        "length",
        "depth",
        "depth0",
        "previtem",
        "nextitem",
        "cycle",
        "changed",
    }
)
_STRING_FILTERS = frozenset(
    {"format", "join", "replace", "string", "reverse", "lower", "upper", "title", "capitalize", "trim"}
    | {"center", "indent", "urlencode", "safe", "first", "last", "list", "batch", "slice", "sort", "unique"}
)
_STRING_METHODS = frozenset({"format", "join", "replace", "lower", "upper", "strip", "title", "__add__"})


def template_risk(text: str) -> str | None:
    """Why a chat template may reach Python internals when rendered, or None."""
    if _TEMPLATE_RISK.search(text):
        return "reaches Python internals"
    try:
        from jinja2 import nodes
        from jinja2.exceptions import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return "builds names or reaches Jinja's globals" if _FALLBACK_RISK.search(text) else None
    try:
        tree = ImmutableSandboxedEnvironment().parse(text)
    except (TemplateSyntaxError, RecursionError, ValueError):
        return "does not parse as a Jinja template (cannot be judged)"
    return _judge(tree, nodes)


def _builds_strings(node: Any, tainted: set[str], nodes: Any) -> bool:
    """Whether ``node`` computes a string at render time (or reads a variable that holds one)."""
    for sub in (node, *node.find_all(nodes.Node)):
        if isinstance(sub, nodes.Concat | nodes.AssignBlock):
            return True
        if isinstance(sub, nodes.Mod | nodes.Add) and any(
            isinstance(side, nodes.Const) and isinstance(side.value, str) for side in (sub.left, sub.right)
        ):
            return True
        if isinstance(sub, nodes.Filter) and sub.name in _STRING_FILTERS:
            return True
        if (
            isinstance(sub, nodes.Call)
            and isinstance(sub.node, nodes.Getattr)
            and sub.node.attr in _STRING_METHODS
        ):
            return True
        if isinstance(sub, nodes.Name) and sub.name in tainted:
            return True
    return False


def _tainted(tree: Any, nodes: Any) -> set[str]:
    """Variables assigned (``{% set %}``, ``{% for %}``) from values built from strings, to a fixpoint."""
    tainted: set[str] = set()
    assigns = [(a.target, a.node) for a in tree.find_all(nodes.Assign)]
    assigns += [(f.target, f.iter) for f in tree.find_all(nodes.For)]
    assigns += [(a.target, a) for a in tree.find_all(nodes.AssignBlock)]  # its value is rendered text
    changed = True
    while changed:
        changed = False
        for target, value in assigns:
            names = {n.name for n in (target, *target.find_all(nodes.Name)) if isinstance(n, nodes.Name)}
            if names - tainted and _builds_strings(value, tainted, nodes):
                tainted |= names
                changed = True
    return tainted


def _judge(tree: Any, nodes: Any) -> str | None:
    for const in tree.find_all(nodes.Const):
        if isinstance(const.value, str) and "__" in const.value:
            return "holds a dunder name"
    tainted = _tainted(tree, nodes)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                return f"reads the attribute {node.attr[:40]!r}"
            if isinstance(base, nodes.Name) and base.name == "loop" and node.attr not in _LOOP_ATTRS:
                return f"reads loop.{node.attr[:40]}"
        elif not isinstance(node.arg, nodes.Const | nodes.Slice) and _builds_strings(
            node.arg, tainted, nodes
        ):
            return "subscripts with a key built from strings at render time"
        elif isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
            return "subscripts with a private name"
        if isinstance(base, nodes.Name) and base.name in _GLOBALS:
            return f"reads into Jinja's global {base.name}"
    for flt in tree.find_all(nodes.Filter):
        if flt.name in ("attr", "map", "selectattr", "rejectattr", "groupby", "sum", "sort", "unique"):
            args = [*flt.args, *(kw.value for kw in flt.kwargs)]
            if any(not isinstance(a, nodes.Const) and _builds_strings(a, tainted, nodes) for a in args):
                return f"passes a computed name to |{flt.name}"
    return None


__all__ = ["template_risk"]

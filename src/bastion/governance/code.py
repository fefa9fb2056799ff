"""Model-code review: ML-specific rules for training and serving code and notebooks (``.py``, ``.ipynb``).

The rules walk the Python AST (no code is run or imported): unsafe deserialisation (``pickle``/``dill``/
``joblib`` loads, ``torch.load`` without ``weights_only=True``, ``np.load(allow_pickle=True)``, ``yaml.load``
without a safe loader), ``trust_remote_code=True``, ``eval``/``exec`` on non-literal input, weights fetched
over HTTP without a digest check, credentials in code or notebook outputs, and PII in notebook outputs
(through :func:`bastion.data.detectors.detect_text`). ``bandit`` runs as a library over the ``.py`` files
as a second engine; its results keep their ``B…`` ids under the ``bandit`` tool in the same SARIF log
(bandit tests our rules already cover are skipped so nothing is reported twice).
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from bastion.errors import DependencyMissing, InvalidInput
from bastion.governance._secrets import find_secrets
from bastion.governance.findings import CheckReport, Issue, Rule
from bastion.governance.interface import Engine

PICKLE = Rule("BST-C001", "unsafe-pickle-load", "pickle/dill/cloudpickle loads run code from the file")
TORCH_LOAD = Rule("BST-C002", "torch-load-unsafe", "torch.load without weights_only=True unpickles code")
JOBLIB = Rule("BST-C003", "joblib-load", "joblib.load unpickles (use skops or safetensors)")
NP_PICKLE = Rule("BST-C004", "numpy-allow-pickle", "np.load(allow_pickle=True) unpickles object arrays")
YAML_LOAD = Rule("BST-C005", "yaml-unsafe-load", "yaml.load without SafeLoader can build arbitrary objects")
REMOTE_CODE = Rule("BST-C006", "trust-remote-code", "trust_remote_code=True runs code from a model hub")
EVAL = Rule("BST-C007", "eval-exec", "eval/exec on a non-literal runs data as code")
SECRET = Rule("BST-C008", "hardcoded-secret", "A credential is hard-coded in code or a notebook output")
PII_OUTPUT = Rule("BST-C009", "pii-in-notebook-output", "A notebook output contains personal data")
DOWNLOAD = Rule("BST-C010", "weights-download-no-digest", "Weights downloaded over HTTP without a digest")
CODE_RULES: tuple[Rule, ...] = (
    PICKLE,
    TORCH_LOAD,
    JOBLIB,
    NP_PICKLE,
    YAML_LOAD,
    REMOTE_CODE,
    EVAL,
    SECRET,
    PII_OUTPUT,
    DOWNLOAD,
)
# bandit tests that duplicate ours (pickle, yaml, eval, exec, torch.load, import pickle/dill)
BANDIT_SKIP = ("B301", "B302", "B102", "B307", "B403", "B506", "B614")
_BANDIT_SECRET_TESTS = frozenset({"B105", "B106", "B107"})  # hardcoded_password_*: their text quotes it
MAX_FILE_BYTES = 5 << 20
WEIGHT_SUFFIXES = (
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".h5",
    ".onnx",
    ".joblib",
    ".safetensors",
)
_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle"}
_SAFE_YAML = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
_DOWNLOADERS = {
    "urlretrieve",
    "urlopen",
    "get",
    "download",
    "load_state_dict_from_url",
    "download_url_to_file",
}
_DIGEST_WORDS = ("sha256", "hashlib", "check_hash", "digest", "hash_prefix", "blake")


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → qualified name of every import (``import numpy as np``, ``from pickle import load as
    l``), so a renamed import does not hide a call from the rules."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                local = a.asname or a.name.split(".")[0]
                out[local] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


class _Visitor(ast.NodeVisitor):
    def __init__(self, source: str, aliases: dict[str, str] | None = None) -> None:
        self.source = source
        self.aliases = aliases or {}
        self.hits: list[tuple[Rule, int, str]] = []
        self.func_stack: list[ast.AST] = []

    def _qualified(self, node: ast.AST) -> str:
        name = _dotted(node)
        first, dot, rest = name.partition(".")
        return self.aliases.get(first, first) + dot + rest if name else name

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.func_stack.append(node)
        self.generic_visit(node)
        self.func_stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _hit(self, rule: Rule, node: ast.AST, message: str) -> None:
        self.hits.append((rule, getattr(node, "lineno", 1), message))

    def _checks_digest(self) -> bool:
        scope = self.func_stack[-1] if self.func_stack else None
        text = ast.get_source_segment(self.source, scope) if scope is not None else self.source
        return any(w in (text or "").lower() for w in _DIGEST_WORDS)

    def visit_Call(self, node: ast.Call) -> None:
        name = self._qualified(node.func)
        head, _, last = name.rpartition(".")
        root = name.split(".")[0]
        if last in ("load", "loads", "Unpickler") and (head in _PICKLE_MODULES or root in _PICKLE_MODULES):
            self._hit(PICKLE, node, f"{name}() deserialises with pickle")
        elif name in ("torch.load",) and not _is_true(_kw(node, "weights_only")):
            self._hit(TORCH_LOAD, node, "torch.load() without weights_only=True")
        elif last == "load" and head in ("joblib", "sklearn.externals.joblib"):
            self._hit(JOBLIB, node, f"{name}() unpickles")
        elif name in ("np.load", "numpy.load") and _is_true(_kw(node, "allow_pickle")):
            self._hit(NP_PICKLE, node, f"{name}(allow_pickle=True)")
        elif name == "yaml.unsafe_load" or (
            name == "yaml.load"
            and self._qualified(_kw(node, "Loader") or ast.Constant(None)).split(".")[-1] not in _SAFE_YAML
        ):
            self._hit(YAML_LOAD, node, f"{name}() without a safe loader")
        elif name in ("eval", "exec", "builtins.eval", "builtins.exec") and not (
            node.args and isinstance(node.args[0], ast.Constant)
        ):
            self._hit(EVAL, node, f"{name}() on a non-literal")
        if _is_true(_kw(node, "trust_remote_code")):
            self._hit(REMOTE_CODE, node, f"{name or 'call'}(trust_remote_code=True)")
        if last in _DOWNLOADERS:
            self._download(node, name, last)
        self.generic_visit(node)

    def _download(self, node: ast.Call, name: str, last: str) -> None:
        urls = [
            a.value
            for a in [*node.args, *(k.value for k in node.keywords)]
            if isinstance(a, ast.Constant)
            and isinstance(a.value, str)
            and a.value.startswith(("http://", "https://"))
        ]
        torch_hub = last in ("load_state_dict_from_url", "download_url_to_file")
        weights = any(u.split("?")[0].lower().endswith(WEIGHT_SUFFIXES) for u in urls)
        if torch_hub:
            if _is_true(_kw(node, "check_hash")) or _kw(node, "hash_prefix") is not None:
                return
        elif not weights:
            return
        if not torch_hub and self._checks_digest():
            return
        self._hit(DOWNLOAD, node, f"{name}() fetches weights without checking a digest")


def review_source(source: str, *, path: str, line_offset: int = 0, cell: int | None = None) -> list[Issue]:
    """The ML rule findings of one Python source text (a file or a notebook cell)."""
    where = f" (cell {cell})" if cell is not None else ""
    issues: list[Issue] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None  # notebooks hold magics; secrets are still searched below
    if tree is not None:
        v = _Visitor(source, _aliases(tree))
        v.visit(tree)
        for rule, line, message in v.hits:
            issues.append(
                Issue(rule, message + where, path, line=line + line_offset if cell is None else None)
            )
    for line, kind in find_secrets(source):
        issues.append(
            Issue(
                SECRET, f"hard-coded {kind}{where}", path, line=line + line_offset if cell is None else None
            )
        )
    return issues


def _output_text(output: dict[str, object]) -> str:
    parts: list[str] = []
    text = output.get("text")
    if isinstance(text, list | str):
        parts.append("".join(text) if isinstance(text, list) else text)
    data = output.get("data")
    if isinstance(data, dict):
        for mime in ("text/plain", "text/html", "text/markdown", "application/json"):
            val = data.get(mime)
            if isinstance(val, list):
                parts.append("".join(str(x) for x in val))
            elif isinstance(val, str):
                parts.append(val)
            elif val is not None:
                parts.append(json.dumps(val))
    for key in ("traceback", "evalue"):
        val = output.get(key)
        if isinstance(val, list):
            parts.append("\n".join(str(x) for x in val))
        elif isinstance(val, str):
            parts.append(val)
    return "\n".join(parts)


def review_notebook(raw: bytes, *, path: str) -> list[Issue]:
    try:
        nb = json.loads(raw)
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a Jupyter notebook (JSON with a cells list)") from exc
    from bastion.data.detectors import all_detectors, detect_text

    detectors = all_detectors(use_presidio=False)
    issues: list[Issue] = []
    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else str(src)
        if cell.get("cell_type") == "code":
            issues.extend(review_source(text, path=path, cell=n))
        for out in cell.get("outputs") or []:
            if not isinstance(out, dict):
                continue
            shown = _output_text(out)
            if not shown:
                continue
            secrets = find_secrets(shown)
            for _line, kind in secrets:
                issues.append(Issue(SECRET, f"{kind} printed in the output of cell {n}", path))
            entities = sorted({s.entity for s in detect_text(shown, detectors=detectors)})
            if "SECRET" in entities:  # the data detectors' own secret finder: one finding, not two
                entities.remove("SECRET")
                if not secrets:
                    issues.append(
                        Issue(SECRET, f"a credential-shaped string in the output of cell {n}", path)
                    )
            if entities:
                issues.append(
                    Issue(
                        PII_OUTPUT,
                        f"output of cell {n} shows {', '.join(entities)}",
                        path,
                        evidence={"cell": n},
                    )
                )
    return issues


def iter_code_files(paths: Sequence[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_file():
            if p.suffix in (".py", ".ipynb"):
                yield p
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "node_modules")
            )
            for f in sorted(filenames):
                if f.endswith((".py", ".ipynb")):
                    yield Path(dirpath) / f


def _bandit(files: Sequence[Path]) -> list[Issue]:
    try:
        from bandit.core import config as b_config
        from bandit.core import manager as b_manager
    except ImportError as exc:
        raise DependencyMissing(
            "bandit is not installed", hint="pip install 'bastion-ml[governance]'"
        ) from exc
    logging.getLogger("bandit").setLevel(logging.ERROR)
    conf = b_config.BanditConfig()
    mgr = b_manager.BanditManager(
        conf, "file", quiet=True, profile={"include": set(), "exclude": set(BANDIT_SKIP)}
    )
    mgr.discover_files([str(f) for f in files])
    mgr.run_tests()
    levels = {"HIGH": "error", "MEDIUM": "warning", "LOW": "note"}
    out: list[Issue] = []
    for b in mgr.get_issue_list():
        level = levels.get(str(b.severity), "warning")
        if level == "error" and str(b.confidence) == "LOW":
            level = "warning"
        rule = Rule(str(b.test_id), str(b.test), f"bandit {b.test_id} ({b.test})", level=level, tool="bandit")
        text = str(b.text)
        if str(b.test_id) in _BANDIT_SECRET_TESTS:  # bandit quotes the password: never repeat it
            text = f"{text.split(':')[0]} (value not shown)"
        out.append(Issue(rule, text, str(b.fname), line=int(b.lineno) or None))
    return out


class BanditEngine:
    """bandit as a library over ``.py`` files (an :class:`~bastion.governance.interface.Engine`)."""

    name = "bandit"

    def check(self, paths: Sequence[Path]) -> CheckReport:
        py = [p for p in paths if p.suffix == ".py"]
        return CheckReport(issues=tuple(_bandit(py)) if py else (), checked=())


def review_code(
    *,
    paths: Sequence[str | os.PathLike[str]],
    use_bandit: bool = True,
    engines: Sequence[Engine] = (),
) -> CheckReport:
    """Review every ``.py`` and ``.ipynb`` file under ``paths`` with the ML rules, bandit (unless
    ``use_bandit=False``) and any further ``engines``, merged into one report."""
    roots = [Path(p) for p in paths]
    for r in roots:
        if not r.exists():
            raise InvalidInput(f"{r}: no such file or directory")
    files = list(iter_code_files(roots))
    issues: list[Issue] = []
    for f in files:
        if f.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{f}: larger than {MAX_FILE_BYTES >> 20} MiB, not reviewed")
        raw = f.read_bytes()
        if f.suffix == ".ipynb":
            issues.extend(review_notebook(raw, path=str(f)))
        else:
            issues.extend(review_source(raw.decode("utf-8", errors="replace"), path=str(f)))
    for engine in [*((BanditEngine(),) if use_bandit else ()), *engines]:
        issues.extend(engine.check(files).issues)
    return CheckReport(issues=tuple(issues), checked=tuple(str(f) for f in files), rules=CODE_RULES)


__all__ = ["BANDIT_SKIP", "CODE_RULES", "BanditEngine", "review_code", "review_notebook", "review_source"]

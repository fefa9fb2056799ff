"""The import layering of docs/architecture.md holds, and no package reaches into another's private modules.

Every ``import`` in ``src/bastion`` (module level or inside a function) is read with ``ast``: a package may
import only packages of its own layer or a lower one, and never a ``_private`` module or ``_private`` name of
another package (its public API is its ``__init__``'s ``__all__`` and its public modules).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bastion"

# Lower never imports higher (docs/architecture.md). Layer 1 includes the root (``bastion.__version__``).
LAYERS: dict[str, int] = {
    **dict.fromkeys(("__init__", "__version__", "errors", "config", "files", "evict"), 1),
    "crypto": 2,
    **dict.fromkeys(("store", "access", "events"), 3),
    **dict.fromkeys(("vault", "models"), 4),
    **dict.fromkeys(("scan", "data", "privacy", "adversarial", "watermark", "guard", "compute"), 5),
    **dict.fromkeys(("serve", "server", "governance", "hunt", "report", "witness", "respond"), 6),
    "client": 7,
    **dict.fromkeys(("cli", "ui", "demo", "__main__"), 8),
}

# Cross-package private imports still waiting for their owner to publish a public name. Each entry must still
# exist (the test below fails on a stale one), so the list only shrinks.
PENDING: dict[tuple[str, str], str] = {
    ("compute", "bastion.data.scan._Acc"): "data: a public accumulator for partitioned scans",
    ("compute", "bastion.data.scan._engines"): "data: a public engine list for partitioned scans",
}


def _imports() -> Iterator[tuple[str, Path, int, str]]:
    """(importing package, file, line, imported dotted name) for every absolute bastion import."""
    for path in sorted(SRC.rglob("*.py")):
        package = path.relative_to(SRC).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("bastion."):
                    yield package, path, node.lineno, name


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split(".")[2:])


def test_every_package_has_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or any(p.glob("*.py"))}
    assert packages - set(LAYERS) == set(), "add new packages to LAYERS (and docs/architecture.md)"


def _lazy_root_facade(path: Path, line: int) -> bool:
    """``bastion/__init__.py`` may re-export a face's entry point lazily (``bastion.connect`` through a module
    ``__getattr__``): an import inside one of its functions runs only when that name is used."""
    if path != SRC / "__init__.py":
        return False
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    return any(f.lineno <= line <= (f.end_lineno or f.lineno) for f in functions)


def test_no_package_imports_a_higher_layer() -> None:
    bad = []
    for package, path, line, name in _imports():
        target = name.split(".")[1]
        if _lazy_root_facade(path, line):
            continue
        if target != package and LAYERS.get(target, 0) > LAYERS.get(package, 9):
            bad.append(f"{path.relative_to(SRC)}:{line}: {package} (layer {LAYERS[package]}) imports {name}")
    assert not bad, "\n".join(bad)


def test_no_package_imports_another_packages_private_module() -> None:
    bad = []
    for package, path, line, name in _imports():
        target = name.split(".")[1]
        if target != package and _private(name) and (package, name) not in PENDING:
            bad.append(f"{path.relative_to(SRC)}:{line}: {package} imports {name}")
    assert not bad, "\n".join(bad)


def test_pending_private_imports_are_not_stale() -> None:
    seen = {(package, name) for package, _, _, name in _imports()}
    stale = [f"{k} ({why})" for k, why in PENDING.items() if k not in seen]
    assert not stale, "fixed: remove from PENDING: " + "; ".join(stale)


@pytest.mark.parametrize(
    "package",
    sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists() and p.name != "__pycache__"),
)
def test_every_package_lists_its_public_api(package: str) -> None:
    tree = ast.parse((SRC / package / "__init__.py").read_text(encoding="utf-8"))
    exported = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "__all__"
            for t in getattr(n, "targets", [getattr(n, "target", None)])
        )
    ]
    assert exported, f"bastion.{package}.__init__ has no __all__"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checks are not vacuous: a planted private import and a planted upward import are both found."""
    source = "from bastion.scan._model import printable\nfrom bastion.cli import app\n"
    tree = ast.parse(source)
    found = [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert _private(found[0]) and not _private(found[1])
    assert LAYERS[found[1].split(".")[1]] > LAYERS["crypto"]

"""Generate ``bastion/scan/allowlist.json`` from the installed libraries.

Run ``python -m bastion.scan._gen.allowlist`` (``--check`` to compare with the checked-in file).

Every entry is an exact ``module:qualname`` pair whose object is **defined** in that module (its
``__module__``/``__qualname__`` say so), checked by importing the real library here, at generation time, never
at scan time. Re-exports (``sklearn.datasets._covtype.GzipFile``) therefore never appear. Compatibility
aliases that old pickles use (``numpy.core.multiarray._reconstruct``, Python 2's ``__builtin__.xrange``,
``copy_reg._reconstructor``) are listed separately and each must resolve, as pickle resolves it, to an object
that is itself an entry.

Sources:

* a short hand-reviewed core (builtins containers and scalars, ``copyreg._reconstructor``, ``collections``,
  ``datetime``, ``argparse.Namespace`` for training-script checkpoints, numpy arrays/dtypes/scalars/random
  states, element-wise numpy ufuncs that ``FunctionTransformer`` wraps);
* torch's own ``weights_only`` allow-list (``torch._weights_only_unpickler._get_allowed_globals``), plus
  every ``torch.nn.modules`` layer class (for whole-module pickles);
* every scikit-learn class defined outside tests/externals/datasets whose whole MRO stays inside
  scikit-learn, numpy, scipy and the standard library's plain-data modules, the Cython ``__pyx_unpickle_*``
  helpers of those modules, and the score functions estimators store (``sklearn.metrics``,
  ``sklearn.feature_selection``);
* scipy.sparse matrix/array classes;
* LightGBM's ``Booster`` and its scikit-learn estimators (``LGBMModel`` subclasses): the benign corpus
  (``tests/scan/benign_corpus.py``) pickles them through joblib and pickle.

Scorers (``scorers`` in the file): scikit-learn's ``_BaseScorer`` classes call the function their state names
(``_score_func``) whenever the estimator is scored, so they are entries only under a state rule
(:func:`bastion.scan._calls.judge_scorer_state`): rebuilt by ``NEWOBJ`` + ``BUILD``, never called with
arguments, and the state's function one of ``score_functions`` — the functions sklearn's own named scorers
wrap (``get_scorer``) and the public metric functions of ``sklearn.metrics``' classification, regression,
ranking and supervised-clustering modules (``make_scorer(fbeta_score, beta=2)``).

Refused by construction (root cause 2 of issue 19): callables that can return their argument, a module, a
class, a function or a mutable global (``torch.jit._pickle.restore_type_tag`` and ``build_*`` lists,
``builtins.getattr``/``type``, ``operator``/``functools``), any module object, anything from ``os``,
``subprocess``, ``io``, ``socket``, ``pickle``, ``joblib.Parallel`` and friends; :data:`EXCLUDED` (callables
that call or rewrite what they are given). ``decimal.Decimal`` and ``fractions.Fraction`` are not entries:
their string parsing and arithmetic reach unbounded big-integer work that holds the GIL.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bastion.scan._numpy_math import NUMPY_ELEMENTWISE

OUT = Path(__file__).resolve().parents[1] / "allowlist.json"

_BUILTINS = [
    "set",
    "frozenset",
    "bytearray",
    "bytes",
    "complex",
    "slice",
    "range",
    "list",
    "dict",
    "tuple",
    "str",
    "int",
    "float",
    "bool",
    "object",
]
#: Python 2 names pickle maps with fix_imports (``_compat_pickle``) whose target is one of the builtins above.
_PY2_BUILTINS = {"xrange": "range", "unicode": "str", "long": "int", "basestring": None, "reduce": None}
_CORE: tuple[tuple[str, str], ...] = (
    ("copyreg", "_reconstructor"),
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("uuid", "UUID"),
    ("argparse", "Namespace"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.ma.core", "MaskedArray"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._generator", "Generator"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
)
_NUMPY_SCALARS = [
    # abstract scalar types (ColumnTransformer's make_column_selector(dtype_include=np.number))
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
    "intc",
    "uintc",
    "int_",
    "uint",
    "number",
    "integer",
    "signedinteger",
    "unsignedinteger",
    "inexact",
    "floating",
    "complexfloating",
    "generic",
    "character",
    "flexible",
]
#: old spellings found in real pickles -> the canonical entry they must resolve to
_ALIASES = {
    "numpy.core.multiarray:_reconstruct": "numpy._core.multiarray:_reconstruct",
    "numpy.core.multiarray:scalar": "numpy._core.multiarray:scalar",
    "numpy.core.numeric:_frombuffer": "numpy._core.numeric:_frombuffer",
    "copy_reg:_reconstructor": "copyreg:_reconstructor",
}
#: entries the sources above would emit that are refused, each with its reason (issue 19, cold attack)
EXCLUDED: dict[str, str] = {
    "sklearn.utils.deprecation:deprecated": "a decorator: calling it on an allowed class rewrites that class",
    "sklearn.utils.parallel:_FuncWrapper": "a stored callable that calls the function it wraps",
}
_TORCH_NEVER = ("torch.jit", "torch._C._jit", "torch.hub", "torch.package", "torch.utils", "torch.ops")
_SKLEARN_SKIP = {
    "tests",
    "externals",
    "_testing",
    "_build_utils",
    "__check_build",
    "datasets",
    "conftest",
    "_show_versions",
    "experimental",
    "_min_dependencies",
    "_distributor_init",
    "_config",
    "callback",
}
#: packages a scikit-learn class's whole MRO must stay inside
_MRO_OK = ("sklearn", "numpy", "scipy", "builtins", "abc", "typing", "numbers", "enum", "collections")
_SKLEARN_FUNCTION_MODULES = (
    "sklearn.metrics._classification",
    "sklearn.metrics._regression",
    "sklearn.metrics._ranking",
    "sklearn.metrics.pairwise",
    "sklearn.metrics.cluster._supervised",
    "sklearn.feature_selection._univariate_selection",
    "sklearn.feature_selection._mutual_info",
)


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _kind(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        raise ValueError("a module is never allowed")
    if isinstance(obj, type):
        return "class"
    if callable(obj):
        return "function"
    return "value"


def _defined(module: str, qualname: str, obj: Any) -> bool:
    """True when ``obj`` is defined in ``module`` (classes/functions), or is a value attribute of it."""
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        own_module = getattr(obj, "__module__", None)
        own_name = getattr(obj, "__qualname__", getattr(obj, "__name__", None))
        return own_module == module and own_name == qualname
    return True  # values (dtype objects, ufuncs): judged by the explicit lists that name them


def _sklearn_modules() -> Iterator[str]:
    import sklearn

    for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
        if _SKLEARN_SKIP.intersection(info.name.split(".")):
            continue
        yield info.name


def _mro_ok(cls: type) -> bool:
    return all(base.__module__.split(".", 1)[0] in _MRO_OK for base in cls.__mro__)


def _sklearn(entries: dict[str, str]) -> None:
    for name in _sklearn_modules():
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: S112 - optional submodules (plotting needs matplotlib, …)
            continue
        for attr, obj in vars(mod).items():
            if isinstance(obj, type) and obj.__module__ == name and _mro_ok(obj):
                if issubclass(obj, BaseException):
                    continue
                entries[f"{name}:{obj.__qualname__}"] = "class"
            elif (attr.startswith("__pyx_unpickle_") or attr == "newObj") and callable(obj):
                entries[f"{name}:{attr}"] = "function"
        if name in _SKLEARN_FUNCTION_MODULES:
            for attr, obj in vars(mod).items():
                if (
                    isinstance(obj, types.FunctionType)
                    and obj.__module__ == name
                    and not attr.startswith("_")
                    and "plot" not in attr
                ):
                    entries[f"{name}:{attr}"] = "function"


def _torch(entries: dict[str, str]) -> None:
    import torch
    import torch._weights_only_unpickler as wou

    for key, obj in wou._get_allowed_globals().items():
        module, _, qualname = key.rpartition(".")
        if module.startswith(_TORCH_NEVER) or isinstance(obj, types.ModuleType):
            continue
        try:
            if _resolve(module, qualname) is not obj:
                continue
        except (ImportError, AttributeError):
            continue
        if not _defined(module, qualname, obj) and module.split(".", 1)[0] != "torch":
            continue
        if _defined(module, qualname, obj):
            entries[f"{module}:{qualname}"] = _kind(obj)
    for info in pkgutil.iter_modules(torch.nn.modules.__path__, "torch.nn.modules."):
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and obj.__module__ == info.name and issubclass(obj, torch.nn.Module):
                entries[f"{info.name}:{obj.__qualname__}"] = "class"
    for act in ("relu", "gelu", "silu", "tanh", "sigmoid", "softmax", "log_softmax", "leaky_relu", "elu"):
        obj = getattr(torch.nn.functional, act)
        if _defined("torch.nn.functional", act, obj):
            entries[f"torch.nn.functional:{act}"] = "function"
        elif getattr(obj, "__module__", None) is None or obj.__module__ == "torch._C._nn":
            entries[f"torch.nn.functional:{act}"] = "value"
    for attr in dir(torch):  # legacy storage classes named inside torch's persistent ids
        obj = getattr(torch, attr)
        if attr.endswith("Storage") and isinstance(obj, type) and _defined("torch", attr, obj):
            entries[f"torch:{attr}"] = "class"
    for cls in ("Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"):
        if hasattr(torch.nn.parameter, cls):
            entries[f"torch.nn.parameter:{cls}"] = "class"


def _scipy(entries: dict[str, str]) -> None:
    import scipy.sparse as sp

    for attr in dir(sp):
        obj = getattr(sp, attr)
        if isinstance(obj, type) and attr.endswith(("_matrix", "_array")):
            entries[f"{obj.__module__}:{obj.__qualname__}"] = "class"


_SCORE_MODULES = (
    "sklearn.metrics._classification",
    "sklearn.metrics._regression",
    "sklearn.metrics._ranking",
    "sklearn.metrics.cluster._supervised",
)


def _scorers(entries: dict[str, str]) -> dict[str, list[str]]:
    """The scorer classes (``_BaseScorer`` and subclasses) and the score functions their state may name."""
    import sklearn.metrics._scorer as scorer_mod

    base = scorer_mod._BaseScorer
    classes = sorted(
        f"{scorer_mod.__name__}:{obj.__qualname__}"
        for obj in vars(scorer_mod).values()
        if isinstance(obj, type) and issubclass(obj, base) and obj.__module__ == scorer_mod.__name__
    )
    funcs: set[str] = set()
    for scorer in scorer_mod._SCORERS.values():  # what scoring="accuracy" … builds
        func = getattr(scorer, "_score_func", None)
        if isinstance(func, types.FunctionType):
            key = f"{func.__module__}:{func.__qualname__}"
            if not _defined(func.__module__, func.__qualname__, _resolve(func.__module__, func.__qualname__)):
                raise SystemExit(f"score function {key} is not defined where named")
            entries.setdefault(key, "function")
            funcs.add(key)
    for name in _SCORE_MODULES:
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if isinstance(obj, types.FunctionType) and obj.__module__ == name and not attr.startswith("_"):
                funcs.add(f"{name}:{attr}")
    for key in classes:
        entries[key] = "class"
    return {"classes": classes, "score_functions": sorted(k for k in funcs if k in entries)}


def _lightgbm(entries: dict[str, str]) -> None:
    """LightGBM's ``Booster`` (pickled as its text model, parsed by LightGBM's C++ loader in ``__setstate__``)
    and its scikit-learn estimators, each defined where named."""
    import lightgbm.basic
    import lightgbm.sklearn

    entries["lightgbm.basic:Booster"] = "class"
    for attr, obj in sorted(vars(lightgbm.sklearn).items()):
        if (
            isinstance(obj, type)
            and issubclass(obj, lightgbm.sklearn.LGBMModel)
            and _defined("lightgbm.sklearn", attr, obj)
        ):
            entries[f"lightgbm.sklearn:{attr}"] = "class"


def generate() -> dict[str, Any]:
    import numpy as np

    entries: dict[str, str] = {}
    for name in _BUILTINS:
        entries[f"builtins:{name}"] = "class"
    core_aliases: dict[str, str] = {}
    for module, qualname in _CORE:
        obj = _resolve(module, qualname)
        if _defined(module, qualname, obj):
            entries[f"{module}:{qualname}"] = _kind(obj)
            continue
        # the object says it lives elsewhere (numpy sets __module__ for display): pickles name that place
        canonical = f"{obj.__module__}:{obj.__qualname__}"
        if _resolve(obj.__module__, obj.__qualname__) is not obj:
            raise SystemExit(f"{module}:{qualname} is not defined where named ({obj!r})")
        entries[canonical] = _kind(obj)
        core_aliases[f"{module}:{qualname}"] = canonical
    for name in _NUMPY_SCALARS:
        obj = getattr(np, name)
        canonical = f"{obj.__module__}:{obj.__qualname__}"
        entries[canonical] = "class"
        if canonical != f"numpy:{name}":  # numpy.uint is numpy.uint64 …: an alias, not a second entry
            core_aliases[f"numpy:{name}"] = canonical
    for name in sorted(NUMPY_ELEMENTWISE):  # the ufuncs among them (np.clip … are functions)
        if isinstance(getattr(np, name, None), np.ufunc):
            entries[f"numpy:{name}"] = "value"
    import numpy.dtypes

    for attr in dir(numpy.dtypes):
        obj = getattr(numpy.dtypes, attr)
        if isinstance(obj, type) and attr.endswith("DType") and _defined("numpy.dtypes", attr, obj):
            entries[f"numpy.dtypes:{attr}"] = "class"  # (aliases such as IntDType are left out)
    _scipy(entries)
    _sklearn(entries)
    _torch(entries)
    _lightgbm(entries)
    scorers = _scorers(entries)
    for name in EXCLUDED:
        entries.pop(name, None)
    for name in list(entries):
        module, qualname = name.split(":", 1)
        if module.split(".", 1)[0] in ("os", "posix", "subprocess", "io", "socket", "pickle", "sys"):
            raise SystemExit(f"refusing a dangerous entry {name}")
    aliases: dict[str, str] = dict(core_aliases)
    for py2, target in _PY2_BUILTINS.items():
        if target is not None:
            aliases[f"__builtin__:{py2}"] = f"builtins:{target}"
    for name in _BUILTINS:
        aliases[f"__builtin__:{name}"] = f"builtins:{name}"
    for alias, canonical in _ALIASES.items():
        if canonical not in entries:
            raise SystemExit(f"alias {alias} targets {canonical}, which is not an entry")
        aliases[alias] = canonical
    import joblib
    import lightgbm
    import scipy
    import sklearn
    import torch

    return {
        "comment": "generated by python -m bastion.scan._gen.allowlist; review changes like code",
        "generated_with": {
            "python": ".".join(map(str, sys.version_info[:3])),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "joblib": joblib.__version__,
            "lightgbm": lightgbm.__version__,
        },
        "entries": dict(sorted(entries.items())),
        "aliases": dict(sorted(aliases.items())),
        "scorers": scorers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file differs")
    args = parser.parse_args(argv)
    doc = generate()
    text = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    if args.check:
        current = json.loads(args.out.read_text())
        same = all(current.get(k) == doc[k] for k in ("entries", "aliases", "scorers"))
        print("allow-list up to date" if same else "allow-list differs from the installed libraries")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(doc['entries'])} entries, {len(doc['aliases'])} aliases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

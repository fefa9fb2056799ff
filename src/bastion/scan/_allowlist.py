"""The allow-list of callables a model pickle may import.

Default deny: a global is accepted only when its exact ``module:qualname`` pair is in ``allowlist.json``,
generated from the installed libraries by :mod:`bastion.scan._gen.allowlist` (each entry is defined in the
module it names; re-exports never match), or listed by the user (``[scan] extra_allow`` in bastion.toml,
``bastion scan --allow module:qualname``). Names are judged as strings: nothing is imported to decide.

Independently of the allow-list, :data:`KNOWN_DANGEROUS` names the modules and callables published pickle
exploits use, so findings for them carry ``critical`` severity.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources

#: bytes per element of each legacy torch storage class (for the legacy formats' raw storage records).
STORAGE_ELEMENT_SIZE: dict[str, int] = {
    "FloatStorage": 4,
    "DoubleStorage": 8,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
    "QInt8Storage": 1,
    "QUInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
    "UntypedStorage": 1,
}


def _load() -> tuple[frozenset[str], dict[str, str], frozenset[str], frozenset[str], frozenset[str]]:
    doc = json.loads(resources.files("bastion.scan").joinpath("allowlist.json").read_text("utf-8"))
    entries = frozenset(doc["entries"])
    aliases = {k: v for k, v in doc["aliases"].items() if v in entries}
    values = frozenset(k for k, kind in doc["entries"].items() if kind == "value")
    scorers = doc.get("scorers", {})
    classes = frozenset(k for k in scorers.get("classes", ()) if k in entries)
    funcs = frozenset(k for k in scorers.get("score_functions", ()) if k in entries)
    return entries, aliases, values, classes, funcs


#: exact ``module:qualname`` pairs (generated, see :mod:`bastion.scan._gen.allowlist`); ``VALUES`` are the
#: entries a pickle may only reference, never call (numpy ufuncs, torch's C activations); ``SCORERS`` are
#: scikit-learn's scorer classes (they call the function their state names) and ``SCORE_FUNCTIONS`` the
#: functions that state may name (:func:`bastion.scan._calls.judge_scorer_state`)
ENTRIES, ALIASES, VALUES, SCORERS, SCORE_FUNCTIONS = _load()
ALLOWED: frozenset[str] = ENTRIES | frozenset(ALIASES)

#: TorchScript archives' pickles are read by torch.jit.load's C++ unpickler, which special-cases these
#: names (it never calls the Python functions, several of which return their argument unchanged).
TORCHSCRIPT_ONLY = frozenset(
    {
        "torch.jit._pickle:build_intlist",
        "torch.jit._pickle:build_doublelist",
        "torch.jit._pickle:build_boollist",
        "torch.jit._pickle:build_tensorlist",
        "torch.jit._pickle:build_tensor_from_id",
        "torch.jit._pickle:restore_type_tag",
    }
)


def normalise_extra(names: Iterable[str]) -> frozenset[str]:
    """User extensions as exact ``module:qualname`` pairs (a legacy ``module.Name`` means ``module:Name``)."""
    out = set()
    for raw in names:
        if ":" in raw:
            out.add(raw)
        else:
            module, _, name = raw.rpartition(".")
            out.add(f"{module}:{name}")
    return frozenset(out)


def is_allowed(module: str, name: str, *, extra: Iterable[str] = ()) -> bool:
    """Whether ``module:name`` may be imported by a model pickle (exact match, nothing imported to decide)."""
    return _is_allowed(module, name, normalise_extra(extra))


@functools.lru_cache(maxsize=4096)
def _is_allowed(module: str, name: str, extra: frozenset[str]) -> bool:
    key = f"{module}:{name}"
    return key in ALLOWED or key in extra


def canonical(module: str, name: str) -> str:
    """The entry an allowed pair resolves to (``__builtin__:xrange`` -> ``builtins:range``)."""
    key = f"{module}:{name}"
    return ALIASES.get(key, key)


#: modules whose import alone is a code-execution, file or network primitive.
KNOWN_DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "subprocess",
        "runpy",
        "importlib",
        "pip",
        "pickle",
        "_pickle",
        "cPickle",
        "dill",
        "marshal",
        "code",
        "codeop",
        "pty",
        "ctypes",
        "webbrowser",
        "imaplib",
        "smtplib",
        "ftplib",
        "poplib",
        "nntplib",
        "telnetlib",
        "http",
        "urllib",
        "socket",
        "shutil",
        "tempfile",
        "sys",
        "_pyrepl",
        "pydoc",
        "timeit",
        "cProfile",
        "profile",
        "pdb",
        "bdb",
        "trace",
        "multiprocessing",
        "asyncio",
        "signal",
        "requests",
        "httpx",
        "aiohttp",
        "pandas",
        "shelve",
        "torch.utils.collect_env",
        "torch.hub",
        "torch.jit",
        "torch.package",
    }
)
KNOWN_DANGEROUS = frozenset(
    {
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.open",
        "builtins.breakpoint",
        "builtins.input",
        "builtins.globals",
        "builtins.vars",
        "builtins.apply",
        "builtins.execfile",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.itemgetter",
        "functools.partial",
        "functools.reduce",
        "uuid._get_command_stdout",
        "numpy.load",
        "numpy.loadtxt",
        "numpy.fromfile",
        "numpy.testing._private.utils.runstring",
        "numpy.f2py.diagnose.run_command",
        "torch.load",
        "torch.utils.collect_env.run",
        "torch.serialization.load",
    }
)


@functools.lru_cache(maxsize=4096)
def is_known_dangerous(module: str, name: str) -> bool:
    base = module.replace("__builtin__", "builtins")
    full = f"{base}.{name}"
    if full in KNOWN_DANGEROUS or "__builtins__" in full or "__globals__" in full:
        return True
    parts = base.split(".")
    return any(".".join(parts[:i]) in KNOWN_DANGEROUS_MODULES for i in range(1, len(parts) + 1))


__all__ = [
    "ALIASES",
    "ALLOWED",
    "ENTRIES",
    "KNOWN_DANGEROUS",
    "SCORERS",
    "SCORE_FUNCTIONS",
    "STORAGE_ELEMENT_SIZE",
    "TORCHSCRIPT_ONLY",
    "VALUES",
    "canonical",
    "is_allowed",
    "is_known_dangerous",
    "normalise_extra",
]

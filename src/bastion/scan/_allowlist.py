"""The allow-list of callables a model pickle may import.

Default deny: a global is accepted only when it is listed here exactly or matches one of a few narrow
(module, name) patterns for class families (``torch.nn.modules.*`` layers, scikit-learn estimators and their
internal data classes). Names are judged as strings: nothing is imported to decide. Dotted names (attribute
chains resolved by protocol 4's ``find_class``) and dunder segments never match a pattern.

Independently of the allow-list, :data:`KNOWN_DANGEROUS` names the modules and callables published pickle
exploits use, so findings for them carry ``critical`` severity.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

_BUILTIN_TYPES = (
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
)

_NUMPY_SCALARS = (
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
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
    "intc",
    "uintc",
    "int_",
    "uint",
)

_TORCH_DTYPES = (
    "float",
    "float32",
    "double",
    "float64",
    "half",
    "float16",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "chalf",
    "uint8",
    "int8",
    "int16",
    "short",
    "int32",
    "int",
    "int64",
    "long",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "bits8",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
)

_TORCH_REBUILD = (
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_sparse_tensor",
    "_rebuild_nested_tensor",
    "_rebuild_qtensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy",
)

_TORCH_ACTIVATIONS = (
    "relu",
    "relu6",
    "gelu",
    "silu",
    "mish",
    "elu",
    "selu",
    "celu",
    "leaky_relu",
    "hardswish",
    "hardsigmoid",
    "hardtanh",
    "softplus",
    "softsign",
    "tanh",
    "sigmoid",
    "softmax",
    "log_softmax",
    "glu",
)

_STORAGES = (
    "Float",
    "Double",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexFloat",
    "ComplexDouble",
    "QInt8",
    "QUInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
    "Untyped",
    "Typed",
)

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


def _exact() -> frozenset[str]:
    names: set[str] = set()
    for t in _BUILTIN_TYPES:
        names.add(f"builtins.{t}")
        names.add(f"__builtin__.{t}")
    names |= {
        "copyreg._reconstructor",
        "copy_reg._reconstructor",
        "_codecs.encode",
        "collections.OrderedDict",
        "collections.Counter",
        "collections.deque",
        "collections.defaultdict",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        # numpy (1.x and 2.x module paths)
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        # joblib's placeholder for arrays written after the pickle opcodes
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # torch
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.strided",
        "torch.sparse_coo",
        "torch.sparse_csr",
        "torch.per_tensor_affine",
        "torch.per_tensor_symmetric",
        "torch.per_channel_affine",
        "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
        "torch.serialization._get_layout",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.nn.parameter.UninitializedParameter",
        "torch.nn.parameter.UninitializedBuffer",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        # TorchScript archives' pickles (harmless list/tensor builders)
        "torch.jit._pickle.build_intlist",
        "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_tensor_from_id",
        "torch.jit._pickle.restore_type_tag",
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names |= {f"{mod}._reconstruct", f"{mod}.scalar"}
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        names.add(f"{mod}._frombuffer")
    names |= {f"numpy.{s}" for s in _NUMPY_SCALARS}
    names |= {f"torch.{d}" for d in _TORCH_DTYPES}
    names |= {f"torch._utils.{f}" for f in _TORCH_REBUILD}
    # activation functions stored as attributes of standard layers (e.g. TransformerEncoderLayer.activation)
    names |= {f"torch.nn.functional.{f}" for f in _TORCH_ACTIVATIONS}
    names |= {f"torch.{s}Storage" for s in _STORAGES}
    return frozenset(names)


ALLOWED: frozenset[str] = _exact()

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CLASS = re.compile(r"[A-Z][A-Za-z0-9_]*")
_PYX = re.compile(r"__pyx_unpickle_[A-Z][A-Za-z0-9_]*")
_TORCH_NN = re.compile(rf"torch\.nn\.modules(\.{_IDENT})+")
_SKLEARN = re.compile(rf"sklearn(\.{_IDENT})+")
_SKLEARN_EXCLUDED = frozenset({"externals", "_testing", "tests", "_build_utils", "__check_build", "_config"})
_SCIPY_SPARSE = re.compile(r"scipy\.sparse(\._[a-z0-9_]+)?")
_SCIPY_SPARSE_CLASS = re.compile(r"(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)")
_NUMPY_DTYPES = re.compile(r"numpy\.dtypes")
_NUMPY_DTYPE_CLASS = re.compile(r"[A-Z][A-Za-z0-9]*DType")
# Capitalised names in those packages that are not data classes.
_DENIED_CLASSES = frozenset({"Popen", "Parallel", "Memory", "Path", "PosixPath", "WindowsPath"})


def is_allowed(module: str, name: str, *, extra: Iterable[str] = ()) -> bool:
    """Whether ``module.name`` may be imported by a model pickle."""
    return _is_allowed(module, name, frozenset(extra))


@functools.lru_cache(maxsize=4096)
def _is_allowed(module: str, name: str, extra: frozenset[str]) -> bool:
    full = f"{module}.{name}"
    if full in ALLOWED or full in extra:
        return True
    if "__" in module or name in _DENIED_CLASSES:
        return False
    if _TORCH_NN.fullmatch(module):
        return bool(_CLASS.fullmatch(name))
    if _SKLEARN.fullmatch(module):
        if _SKLEARN_EXCLUDED.intersection(module.split(".")):
            return False
        return bool(_CLASS.fullmatch(name) or _PYX.fullmatch(name))
    if _SCIPY_SPARSE.fullmatch(module):
        return bool(_SCIPY_SPARSE_CLASS.fullmatch(name))
    if _NUMPY_DTYPES.fullmatch(module):
        return bool(_NUMPY_DTYPE_CLASS.fullmatch(name))
    return False


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


__all__ = ["ALLOWED", "KNOWN_DANGEROUS", "STORAGE_ELEMENT_SIZE", "is_allowed", "is_known_dangerous"]

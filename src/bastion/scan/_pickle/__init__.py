"""Static pickle analysis: walk the opcodes, simulate stack and memo, never import or unpickle.

Every global a pickle imports (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) is judged against the allow-list
of :mod:`bastion.scan._allowlist`; every call (``REDUCE``, ``OBJ``, ``NEWOBJ(_EX)``, ``INST``) must target
such an imported global, and ``BUILD`` on an imported global (class-attribute overwrite) is refused.
Operands that cannot be resolved statically (``STACK_GLOBAL`` on values that are not plain strings,
extension-registry codes, calls on computed values) are findings, not guesses.

The walk is iterative with explicit bounds (opcode count, stack size, MARK and container nesting, memo size,
stream size), so adversarial input ends in :class:`~bastion.scan._io.Malformed`, never in a RecursionError.
Where CPython's readers could disagree with this walk the stream is refused, not guessed: integer literals are
parsed as CPython parses them (``I0x1``, ``I+1``, ``I1_0``, ``I010``), an opcode straddling a ``FRAME`` end is
malformed, and ``BUILD``/``SETITEM``/``APPEND`` on anything this pickle did not build (an imported global, a
persistent object, ``numpy.dtype(..., copy=False)``) is a finding.

joblib's ``NumpyArrayWrapper`` is understood only in a joblib reading (``joblib=True``), only for the exact
construction joblib writes (``NEWOBJ`` with no arguments, then ``BUILD`` with joblib's keys, at a frame
boundary), with numpy computing the item size from the real dtype: the raw array bytes are skipped (numeric
dtypes) or analysed as the nested pickle joblib reads with a plain unpickler (object dtype). The scanner
judges the ``pickle.load`` reading of the same bytes separately (CPython's unpickler, replayed with stubs).
"""

from bastion.scan._pickle.analyzer import PickleAnalyzer, analyze_pickle, looks_like_pickle
from bastion.scan._pickle.values import JOBLIB_WRAPPER, Box, Global, Obj, Opaque, PickleResult, plain

__all__ = [
    "JOBLIB_WRAPPER",
    "Box",
    "Global",
    "Obj",
    "Opaque",
    "PickleAnalyzer",
    "PickleResult",
    "analyze_pickle",
    "looks_like_pickle",
    "plain",
]

"""The element-wise numpy math functions ``FunctionTransformer`` legitimately wraps (one list, two readers).

The allow-list generator (:mod:`bastion.scan._gen.allowlist`) emits the ones that are ``numpy.ufunc`` objects
as values a pickle may import; the skops schema check (:mod:`bastion.scan._skops`) accepts all of them as the
function a ``FunctionNode``/``TypeNode`` names (the few that are plain numpy functions, e.g. ``clip``, only
call methods of the array they are given).
"""

from __future__ import annotations

NUMPY_ELEMENTWISE: frozenset[str] = frozenset(
    {
        "abs",
        "absolute",
        "fabs",
        "sign",
        "square",
        "sqrt",
        "cbrt",
        "reciprocal",
        "negative",
        "positive",
        "exp",
        "exp2",
        "expm1",
        "log",
        "log2",
        "log10",
        "log1p",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "arctan2",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "hypot",
        "floor",
        "ceil",
        "trunc",
        "rint",
        "round",
        "around",
        "fix",
        "deg2rad",
        "rad2deg",
        "degrees",
        "radians",
        "isnan",
        "isinf",
        "isfinite",
        "signbit",
        "add",
        "subtract",
        "multiply",
        "divide",
        "true_divide",
        "floor_divide",
        "power",
        "float_power",
        "mod",
        "fmod",
        "remainder",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "clip",
        "logaddexp",
        "logaddexp2",
        "heaviside",
        "nan_to_num",
    }
)

__all__ = ["NUMPY_ELEMENTWISE"]

"""Keras configs (``.keras`` ``config.json``, HDF5 ``model_config``, bare JSON): the routes to Python code."""

from __future__ import annotations

import re
from typing import Any

from bastion.scan._allowlist import is_known_dangerous
from bastion.scan._formats.common import loads_json
from bastion.scan._io import Malformed
from bastion.scan._model import Severity
from bastion.scan.interface import AddIssue

_KERAS_FUNCTION_MODULES = re.compile(
    r"keras(\.src)?\.(activations|losses|metrics|initializers|regularizers|constraints|optimizers"
    r"(\.schedules)?|ops)(\.[a-z_]+)*"
)
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")


def check_keras_config(data: bytes, add: AddIssue, *, what: str = "Keras config") -> None:
    """Flag Lambda layers, custom objects and module references outside keras (CVE-2025-1550 style)."""
    config = loads_json(data, what)
    todo: list[Any] = [config]
    seen = 0
    while todo:
        node = todo.pop()
        seen += 1
        if seen > 5_000_000:
            raise Malformed(f"{what} is too large to analyse")
        if isinstance(node, list):
            todo.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        todo.extend(node.values())
        cls = node.get("class_name")
        if not isinstance(cls, str):
            continue
        module = node.get("module")
        ref = f"{module}.{cls}" if isinstance(module, str) else cls
        if cls in ("Lambda", "TFOpLambda") or node.get("function_type") == "lambda":
            add("keras-lambda", Severity.critical, f"{cls} layer carries Python code", ref)
        if cls == "TorchModuleWrapper":
            add(
                "keras-torch-module",
                Severity.critical,
                "TorchModuleWrapper layer carries a pickled torch module",
                ref,
            )
        if cls == "TFSMLayer":
            add(
                "keras-savedmodel",
                Severity.high,
                "TFSMLayer loads a TensorFlow SavedModel (code) at load time",
                ref,
            )
        if isinstance(module, str):
            if module != "keras" and not module.startswith("keras."):
                sev = Severity.critical if is_known_dangerous(module, cls) else Severity.high
                add("keras-module-injection", sev, f"config imports {ref} from outside keras", ref)
            elif cls == "function":
                fn = node.get("config")
                if not _KERAS_FUNCTION_MODULES.fullmatch(module) or not isinstance(fn, str):
                    add(
                        "keras-module-injection",
                        Severity.high,
                        f"config calls {module}.{fn}",
                        f"{module}.{fn}",
                    )
            elif not _CLASS_NAME.fullmatch(cls):
                add("keras-module-injection", Severity.high, f"config references {ref}", ref)
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered and not registered.startswith("keras"):
            add("keras-custom-object", Severity.medium, f"custom object {registered} needs code at load", ref)


__all__ = ["check_keras_config"]

"""The generated allow-list: exact pairs, defined where named, reproducible from the installed libraries."""

from __future__ import annotations

import json
import types
import warnings

import pytest

from bastion.scan._allowlist import ALIASES, ENTRIES, is_allowed
from bastion.scan._gen import allowlist as gen
from bastion.scan._unpickler import resolve


def test_checked_in_list_matches_the_installed_libraries() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = gen.generate()
    current = json.loads(gen.OUT.read_text())
    assert current["entries"] == doc["entries"] and current["aliases"] == doc["aliases"], (
        "run: python -m bastion.scan._gen.allowlist"
    )


def test_every_entry_is_defined_where_it_is_named() -> None:
    for key in ENTRIES:
        module, _, qualname = key.partition(":")
        obj = resolve(key)
        assert not isinstance(obj, types.ModuleType), key
        if isinstance(obj, type | types.FunctionType):
            assert (obj.__module__, obj.__qualname__) == (module, qualname), key
    for alias, target in ALIASES.items():
        assert target in ENTRIES and resolve(target) is not None, alias


@pytest.mark.parametrize(
    "pair",
    [
        ("sklearn.datasets._covtype", "GzipFile"),
        ("sklearn.datasets._base", "NamedTemporaryFile"),
        ("sklearn.callback._transport", "Client"),
        ("torch.nn.modules.linear", "F"),
        ("torch.jit._pickle", "restore_type_tag"),
        ("torch.jit._pickle", "build_intlist"),
        ("sklearn.utils.parallel", "Parallel"),
        ("builtins", "getattr"),
        ("builtins", "type"),
        ("numpy", "load"),
        ("torch", "load"),
    ],
)
def test_known_bad_names_are_absent(pair: tuple[str, str]) -> None:
    assert not is_allowed(*pair)


def test_exact_match_only() -> None:
    assert is_allowed("collections", "OrderedDict")
    assert not is_allowed("collections", "OrderedDict.fromkeys")  # an attribute chain of an entry
    assert is_allowed("__builtin__", "xrange") and is_allowed("copy_reg", "_reconstructor")
    assert is_allowed("pathlib", "Path", extra=["pathlib:Path"]) and not is_allowed("pathlib", "Path")

"""skops archives: every type and function ``schema.json`` references is judged by the allow-list.

The malicious files are written with ``skops.io.dump`` (dumping records references, it runs nothing) and are
never loaded.
"""

from __future__ import annotations

import builtins
import copy
import functools
import io
import json
import operator
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from bastion.errors import UnsafeArtifact
from bastion.scan import FileReport, Severity, Verdict, inspect_artifact, scan

sio = pytest.importorskip("skops.io")


def _dump(obj: Any, path: Path) -> Path:
    sio.dump(obj, path)
    return path


def _report(path: Path) -> FileReport:
    return scan(paths=[path]).files[0]


def _pipeline_with(func: Any) -> Pipeline:
    return Pipeline([("f", FunctionTransformer(func=func)), ("m", LogisticRegression())])


MALICIOUS: dict[str, tuple[Callable[[], Any], str]] = {
    # name: (object to dump, the callable a finding must name)
    "os-system": (lambda: FunctionTransformer(func=os.system), f"{os.system.__module__}.system"),
    "builtins-eval": (lambda: FunctionTransformer(func=builtins.eval), "builtins.eval"),
    "pipeline-os-system": (lambda: _pipeline_with(os.system), f"{os.system.__module__}.system"),
    "methodcaller": (
        lambda: FunctionTransformer(func=operator.methodcaller("system", "id")),
        "operator.methodcaller",
    ),
    "attrgetter": (lambda: FunctionTransformer(func=operator.attrgetter("system")), "operator.attrgetter"),
    "partial": (lambda: FunctionTransformer(func=functools.partial(os.system, "id")), "functools.partial"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_skops_is_flagged_whatever_its_name(case: str, tmp_path: Path) -> None:
    make, target = MALICIOUS[case]
    for name in ("model.skops", "weights.safetensors"):  # judged by structure, never by extension
        path = _dump(make(), tmp_path / name)
        report = _report(path)
        assert report.format == "skops"
        assert report.verdict is Verdict.unsafe
        hits = [i for i in report.issues if i.callable == target]
        assert hits, report.issues
        assert hits[0].severity is Severity.critical
        assert hits[0].member == "schema.json"
        assert "$." in hits[0].message  # the node path inside the schema
        with pytest.raises(UnsafeArtifact):
            inspect_artifact(path)
        # skops itself also distrusts what was flagged: the allow-list is at least as strict
        assert sio.get_untrusted_types(file=str(path))


def test_partial_also_flags_the_wrapped_function(tmp_path: Path) -> None:
    path = _dump(FunctionTransformer(func=functools.partial(os.system, "id")), tmp_path / "p.skops")
    callables = {i.callable for i in _report(path).issues}
    assert {"functools.partial", f"{os.system.__module__}.system"} <= callables


def _benign() -> dict[str, Any]:
    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = ["apple banana", "banana cherry", "cherry date", "date apple"]
        return {
            "logreg": LogisticRegression(max_iter=300).fit(x, y),
            "tfidf-logreg": Pipeline([("t", TfidfVectorizer()), ("m", LogisticRegression())]).fit(
                text, [0, 1, 0, 1]
            ),
            "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
            "scaler": StandardScaler().fit(x),
            "mlp": MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(x, y),
            "log1p": FunctionTransformer(func=np.log1p),
        }


def test_benign_skops_files_are_clean(tmp_path: Path) -> None:
    for name, est in _benign().items():
        path = _dump(est, tmp_path / f"{name}.skops")
        report = _report(path)
        assert report.format == "skops", name
        assert report.verdict is Verdict.safe, (name, report.issues, report.errors)
        assert any("skops-schema" in m for m in report.members)
        inspect_artifact(path)  # must not raise


def _rewrite_schema(path: Path, edit: Callable[[dict[str, Any]], None], extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    members.update(extra)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    out = path.with_name("edited.bin")
    out.write_bytes(buf.getvalue())
    return out


def test_hand_edited_schemas_are_flagged(tmp_path: Path, craft: ModuleType) -> None:
    base = _dump(StandardScaler().fit(np.eye(3)), tmp_path / "s.skops")
    assert _report(base).verdict is Verdict.safe

    def swap_class(schema: dict[str, Any]) -> None:  # ObjectNode of subprocess.Popen
        schema["__module__"], schema["__class__"] = "subprocess", "Popen"

    def unknown_loader(schema: dict[str, Any]) -> None:
        schema["__loader__"] = "EvilNode"

    def method(schema: dict[str, Any]) -> None:
        owner = copy.deepcopy({k: v for k, v in schema.items() if k != "protocol"})
        schema["content"]["content"]["m"] = {
            "__class__": "StandardScaler",
            "__module__": "sklearn.preprocessing._data",
            "__loader__": "MethodNode",
            "content": {"func": "fit", "obj": owner},
        }

    def dotted(schema: dict[str, Any]) -> None:  # attribute chains are never allowed
        schema["__module__"], schema["__class__"] = "numpy", "__builtins__.eval"

    cases = {"subprocess.Popen": swap_class, "EvilNode": unknown_loader, "fit": method, "eval": dotted}
    for needle, edit in cases.items():
        report = _report(_rewrite_schema(base, edit, {}))
        assert report.verdict is Verdict.unsafe, needle
        assert any(needle in i.message for i in report.issues), (needle, report.issues)

    # an object array hidden in a skops archive's .npy member is analysed as a pickle
    npy = craft.npy_object(craft.wrap(craft.call(craft.g("posix", "system", 2), craft.s("id")), 2))
    report = _report(_rewrite_schema(base, lambda s: None, {"123.npy": npy}))
    assert report.verdict is Verdict.unsafe
    assert any(i.callable == "posix.system" and i.member == "123.npy" for i in report.issues)


def test_zip_with_an_unrelated_schema_json_is_not_skops(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", json.dumps({"type": "object", "properties": {}}))
    path = tmp_path / "bundle.zip"
    path.write_bytes(buf.getvalue())
    report = _report(path)
    assert report.format == "zip"
    assert report.verdict is Verdict.safe

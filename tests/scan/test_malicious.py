"""Every published pickle bypass, in every container form, behind wrong extensions: all flagged."""

from __future__ import annotations

import pytest

from bastion.scan import ScanConfig, Severity, Verdict, scan

HEADER_TRICK_RULES = {
    "torch-zip-renamed-local-header": "zip-header-mismatch",
    "torch-zip-descriptor-flag": "zip-header-mismatch",
    "torch-zip-bad-crc": "zip-crc-mismatch",
}


def test_every_payload_in_every_form_is_flagged(payload, form, craft, write) -> None:
    name, build = craft.FORMS[form]
    path = write(name, build(payload))
    report = scan(paths=[path])
    (file_report,) = report.files
    assert file_report.verdict is Verdict.unsafe, (file_report.errors, file_report.members)
    assert report.exit_code == 1
    serious = [i for i in file_report.issues if i.severity in (Severity.critical, Severity.high)]
    assert serious
    if payload.target is not None:
        assert payload.target in {i.callable for i in file_report.issues}, file_report.issues
        hit = next(i for i in file_report.issues if i.callable == payload.target)
        assert hit.offset is not None and hit.offset >= 0
    if form in HEADER_TRICK_RULES:
        assert HEADER_TRICK_RULES[form] in {i.rule for i in file_report.issues}
    if form in ("torch-zip", "npz-object", "tar-gz"):
        assert all(i.member for i in serious if i.callable == payload.target), (
            "member path inside the container"
        )


@pytest.mark.parametrize("proto", [2, 4])
def test_known_exploit_callables_are_critical(craft, write, proto) -> None:
    payload = next(p for p in craft.PAYLOADS if p.name == "os.system")
    report = scan(paths=[write("x.bin", payload.pickle(proto))])
    (issue,) = report.files[0].issues
    assert issue.severity is Severity.critical
    assert issue.rule == "pickle-dangerous-global"
    # GLOBAL right after PROTO; STACK_GLOBAL after two BINUNICODE operands (2 + 7 + 11)
    assert issue.offset == (2 if proto == 2 else 20)


def test_unknown_callable_is_refused_by_default_deny(craft, write) -> None:
    """Not on any deny-list, still refused: the allow-list is what decides."""
    body = craft.call(craft.g("some_innocent_looking_pkg.helpers", "rebuild", 2), craft.s("x"))
    report = scan(paths=[write("m.pkl", craft.wrap(body, 2))])
    (issue,) = report.files[0].issues
    assert issue.rule == "pickle-global-not-allowed"
    assert issue.callable == "some_innocent_looking_pkg.helpers.rebuild"


def test_sklearn_allow_list_admits_classes_not_functions(craft, write) -> None:
    ok = craft.wrap(craft.call(craft.g("sklearn.linear_model._logistic", "LogisticRegression", 2)), 2)
    assert scan(paths=[write("ok.pkl", ok)]).verdict is Verdict.safe
    for module, name in (
        ("sklearn.datasets", "fetch_openml"),
        ("sklearn.utils._testing", "SkipTest"),
        ("sklearn.externals._packaging.version", "Version"),
        ("sklearn.base", "__builtins__"),
        ("sklearn.pipeline", "Pipeline.__init__.__globals__"),
    ):
        bad = craft.wrap(craft.call(craft.g(module, name, 4)), 4)
        assert scan(paths=[write("bad.pkl", bad)]).verdict is Verdict.unsafe, (module, name)


def _torchscript_zip(data_pkl: bytes) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ts/data.pkl", data_pkl)
        zf.writestr("ts/constants.pkl", b"\x80\x02).")
        zf.writestr("ts/code/__torch__/net.py", "class Net(Module):\n  pass\n")
        zf.writestr("ts/version", "3\n")
    return buf.getvalue()


def test_torchscript_classes_only_inside_torchscript_archives(craft, write) -> None:
    script_class = craft.call(craft.g("__torch__.net", "Net", 2))
    allow = ScanConfig(unsafe_allow_torchscript=True)
    ok = scan(paths=[write("script.pt", _torchscript_zip(craft.wrap(script_class, 2)))], config=allow)
    assert ok.files[0].format == "torchscript" and ok.verdict is Verdict.safe
    evil = craft.wrap(craft.call(craft.g("os", "system", 2), craft.s("id")), 2)
    bad = scan(paths=[write("evil_script.pt", _torchscript_zip(evil))], config=allow)
    assert bad.files[0].issues[0].callable == "os.system"
    # outside a TorchScript archive, __torch__ names are not allowed
    assert scan(paths=[write("plain.pkl", craft.wrap(script_class, 2))]).verdict is Verdict.unsafe


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("numpy._core", "_ufunc_reconstruct"),  # __import__(module) + getattr: an import primitive
        ("numpy.core", "_ufunc_reconstruct"),
        ("numpy", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch._utils", "_import_dotted_name"),
        ("torch.nn.functional", "handle_torch_function"),
        ("torch.nn.modules.module", "register_module_forward_hook"),
        ("collections", "namedtuple"),  # builds a class with exec
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),  # reads arrays from side files by name
        ("copyreg", "__newobj__"),
        ("builtins", "type"),
    ],
)
def test_near_misses_inside_trusted_packages_are_refused(craft, write, module, name) -> None:
    report = scan(paths=[write("m.pkl", craft.wrap(craft.call(craft.g(module, name, 4)), 4))])
    assert report.verdict is Verdict.unsafe
    assert report.files[0].issues[0].callable == f"{module}.{name}"

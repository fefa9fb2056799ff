"""Loading models and data for an audit: every supported reference, and clear errors for the rest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.adversarial.loading import TRUST_TORCHSCRIPT, load_data, open_model
from bastion.cli import run
from bastion.errors import InvalidInput, NotFound, UnsafeArtifact
from bastion.models import SklearnAdapter, TorchAdapter


def test_load_npz_and_csv(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, member=(np.arange(30) < 15))
    d = load_data(tmp_path / "d.npz")
    assert d.x.shape == (30, 4) and d.member is not None and d.member.sum() == 15
    rows = ["a,b,label"] + [f"{i},{i * 2},{i % 2}" for i in range(12)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    c = load_data(tmp_path / "d.csv", target="label")
    assert c.x.shape == (12, 2) and set(c.y) == {0, 1}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((0, 3)), "y": np.zeros(0)}, "empty"),
        ({"x": np.full((4, 3), np.nan), "y": np.zeros(4)}, "NaN"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "one label per row"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.5, 1, 2, 3])}, "integer"),
        ({"features": np.zeros((4, 3))}, "needs arrays"),
    ],
)
def test_bad_data_is_rejected(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(InvalidInput, match=message):
        load_data(tmp_path / "d.npz")


def test_data_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(InvalidInput, match="unsupported data format"):
        load_data(tmp_path / "d.json")
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="target column"):
        load_data(tmp_path / "d.csv")


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "usermodels"
    pkg.mkdir()
    (pkg / "nets.py").write_text(
        textwrap.dedent("""
        import torch

        def small():
            return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    """)
    )
    monkeypatch.syspath_prepend(str(pkg))
    return "nets:small"


def test_factory_with_safetensors(tmp_path: Path, factory_module: str, digits) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    with open_model(
        factory_module,
        input_shape=(64,),
        n_classes=10,
        weights=tmp_path / "w.safetensors",
        clip_values=(0, 1),
    ) as loaded:
        assert isinstance(loaded.adapter, TorchAdapter) and loaded.trainer is not None
        with torch.no_grad():
            ref = net(torch.from_numpy(digits.x_test[:5])).argmax(1).numpy()
        np.testing.assert_array_equal(loaded.adapter.predict(digits.x_test[:5]), ref)
        shadow = loaded.trainer(digits.x_train[:200], digits.y_train[:200], 1)
        assert shadow.predict(digits.x_test[:3]).shape == (3,)
    with (
        pytest.raises(InvalidInput, match="--weights"),
        open_model(factory_module, input_shape=(64,), n_classes=10),
    ):
        pass
    wrong = {"0.weight": torch.zeros(3, 3)}
    save_file(wrong, str(tmp_path / "bad.safetensors"))
    with (
        pytest.raises(InvalidInput, match="do not fit"),
        open_model(factory_module, input_shape=(64,), n_classes=10, weights=tmp_path / "bad.safetensors"),
    ):
        pass


def test_torchscript_and_shape_mismatch(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    net = torch.nn.Sequential(torch.nn.Linear(64, 10))
    torch.jit.save(torch.jit.script(net), str(tmp_path / "m.pt"))
    with (  # TorchScript code runs at load: refused unless trusted
        pytest.raises(UnsafeArtifact, match="TorchScript archive"),
        open_model(str(tmp_path / "m.pt"), input_shape=(64,), n_classes=10),
    ):
        pass
    trust = (TRUST_TORCHSCRIPT,)
    with open_model(str(tmp_path / "m.pt"), input_shape=(64,), n_classes=10, trusted_types=trust) as loaded:
        assert loaded.kind == "torchscript"
        assert loaded.adapter.predict(digits.x_test[:4]).shape == (4,)
        with pytest.raises(InvalidInput, match="shape"):
            loaded.adapter.predict(digits.x_test[:4, :32])


def test_skops_trusted_types(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression(max_iter=200).fit(digits.x_train[:300], digits.y_train[:300])
    sio.dump(est, tmp_path / "m.skops")
    with open_model(str(tmp_path / "m.skops"), input_shape=(64,), n_classes=10) as loaded:
        assert isinstance(loaded.adapter, SklearnAdapter) and loaded.trainer is not None
        assert (loaded.adapter.predict(digits.x_test) == digits.y_test).mean() > 0.8
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=json.dumps), tmp_path / "f.skops")  # a function skops does not trust
    with (
        pytest.raises(UnsafeArtifact, match=r"json\.dumps"),
        open_model(str(tmp_path / "f.skops"), input_shape=(64,), n_classes=10),
    ):
        pass


def test_cli_trusting_a_skops_type_is_named_unsafe_and_logged(
    tmp_path: Path, digits, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=json.dumps), tmp_path / "f.skops")  # a function skops does not trust
    np.savez(tmp_path / "d.npz", x=digits.x_test[:40], y=digits.y_test[:40])
    args = ["audit", "--model", str(tmp_path / "f.skops"), "--data", str(tmp_path / "d.npz")]
    args += ["--out", str(tmp_path / "o")]
    assert run(args) == 1  # refused: an unsafe artifact (a finding)
    assert "json.dumps" in capsys.readouterr().err
    assert run([*args, "--unsafe-trust-type", "json.dumps"]) == 2  # trusted, loaded: not a classifier
    err = capsys.readouterr().err
    assert "unsafe: trusting 1 type(s)" in err and "not a scikit-learn classifier" in err


def test_skops_loads_the_bytes_it_checked(tmp_path: Path, digits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A file swapped right after the check is not what gets loaded (the skops TOCTOU of issue 19)."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    import bastion.scan

    path = tmp_path / "m.skops"
    est = LogisticRegression(max_iter=200).fit(digits.x_train[:300], digits.y_train[:300])
    sio.dump(est, path)
    evil = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=json.dumps), evil)
    real_scan = bastion.scan.scan_bytes

    def scan_then_swap(data, **kwargs):  # type: ignore[no-untyped-def]
        report = real_scan(data, **kwargs)
        path.write_bytes(evil.read_bytes())  # the attacker swaps the file between check and use
        return report

    monkeypatch.setattr(bastion.scan, "scan_bytes", scan_then_swap)
    with open_model(str(path), input_shape=(64,), n_classes=10) as loaded:
        assert isinstance(loaded.adapter, SklearnAdapter)
        assert type(loaded.adapter.estimator) is LogisticRegression


def test_unsupported_and_unknown_models(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x01")
    with (
        pytest.raises(InvalidInput, match="unsupported model type"),
        open_model(str(tmp_path / "m.onnx"), input_shape=(4,), n_classes=2),
    ):
        pass
    with pytest.raises(NotFound), open_model("no/such/thing.pt", input_shape=(4,), n_classes=2):
        pass
    with (
        pytest.raises(InvalidInput, match="registry reference"),
        open_model("fraud:3", input_shape=(4,), n_classes=2),
    ):
        pass
    with (
        pytest.raises(InvalidInput, match="v2/models"),
        open_model("http://127.0.0.1:9/", input_shape=(4,), n_classes=2),
    ):
        pass


@pytest.mark.slow
def test_registry_model_audit_is_recorded(tmp_path: Path, digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    from bastion.crypto.kdf import KdfParams
    from bastion.models.recipes import MlpConfig, build_mlp, save_model
    from bastion.vault import init_project

    home = tmp_path / "home"
    try:
        from bastion.crypto.kdf import KdfParams

        vault = init_project(
            home=home, passphrase="correct horse battery staple", kdf=KdfParams.unsafe_fast()
        )
    except ImportError:
        vault = init_project(home=home, passphrase="correct horse battery staple")
    net = build_mlp(n_features=64, n_classes=10, hidden=(64,))  # bastion's format: Linear, ReLU, Linear
    net[0].load_state_dict(digits_model.module[1].state_dict())
    net[2].load_state_dict(digits_model.module[3].state_dict())
    model_dir = save_model(net, tmp_path / "model", config=MlpConfig(64, 10, (64,)))
    vault.push(model_dir, name="digits", kind="model")
    member = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    np.savez(
        tmp_path / "d.npz",
        x=np.concatenate([digits.x_train[:300], digits.x_test[:300]]),
        y=np.concatenate([digits.y_train[:300], digits.y_test[:300]]),
        member=member,
    )
    code = run(
        [
            "audit",
            "--model",
            "digits:1",
            "--data",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "o"),
            "--attacks",
            "evasion,membership",
            "--clip",
            "0,1",
            "--home",
            str(home),
            "--format",
            "json",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["model"]["registry_ref"] == "digits:1"
    assert report["sections"]["membership"]["status"] == "ok"
    notes = vault.annotations("digits:1", namespace="audit")
    assert len(notes) == 1 and notes[0].data["grade"] == report["grade"]


@pytest.mark.slow
def test_black_box_endpoint_audit(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    """An Open Inference Protocol v2 endpoint audited as a black box (score-based and label-only attacks)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bastion.adversarial.audit import AuditTarget, run_audit

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            t = body["inputs"][0]
            p = digits_model.predict_proba(np.asarray(t["data"], np.float32).reshape(t["shape"]))
            data = json.dumps(
                {
                    "outputs": [
                        {
                            "name": "p",
                            "shape": list(p.shape),
                            "datatype": "FP32",
                            "data": p.reshape(-1).tolist(),
                        }
                    ]
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/digits"
        with open_model(url, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0)) as loaded:
            assert loaded.kind == "remote" and loaded.trainer is None
            target = AuditTarget(model=loaded.adapter, x=digits.x_test[:30], y=digits.y_test[:30])
            report = run_audit(target=target, attacks=["evasion"], budget="quick")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    sec = report.sections["evasion"]
    assert set(k for k in sec.metrics if k.startswith("robust_accuracy_")) == {
        "robust_accuracy_square",
        "robust_accuracy_hopskipjump",
    }
    assert sec.metrics["robust_accuracy"] < sec.metrics["clean_accuracy"]
    assert any("black-box model" in n for n in sec.notes)

"""ModelAdapter implementations: shapes, probabilities, gradients and clear errors."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from bastion.errors import InvalidInput, ServiceError
from bastion.models import (
    CallableAdapter,
    GradientAdapter,
    ModelAdapter,
    RemoteAdapter,
    SklearnAdapter,
    TorchAdapter,
    supports_gradients,
)

RNG = np.random.default_rng(0)
X = RNG.random((40, 6)).astype(np.float32)
Y = (X[:, 0] > 0.5).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)  # 3 classes


def _torch_model() -> TorchAdapter:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return TorchAdapter(net, input_shape=(6,), n_classes=3, clip_values=(0.0, 1.0), batch_size=7)


def test_torch_adapter_probabilities_and_protocol() -> None:
    m = _torch_model()
    assert isinstance(m, ModelAdapter) and isinstance(m, GradientAdapter) and supports_gradients(m)
    p = m.predict_proba(X)
    assert p.shape == (40, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(m.predict(X), p.argmax(axis=1))
    # batching gives the same answer as one big batch
    with torch.no_grad():
        ref = torch.softmax(m.module(torch.from_numpy(X)), dim=1).numpy()
    np.testing.assert_allclose(p, ref, atol=1e-6)


def test_torch_loss_gradient_matches_finite_differences() -> None:
    m = _torch_model()
    ref = copy.deepcopy(m.module).double()
    x = X[:3].astype(np.float64)
    g = m.loss_gradient(X[:3], Y[:3])
    assert g.shape == (3, 6)

    def loss(v: np.ndarray) -> float:
        with torch.no_grad():
            out = ref(torch.from_numpy(v[None]))
            return float(torch.nn.functional.cross_entropy(out, torch.tensor([int(Y[0])])))

    eps = 1e-6
    num = np.array([(loss(x[0] + eps * e) - loss(x[0] - eps * e)) / (2 * eps) for e in np.eye(6)])
    np.testing.assert_allclose(g[0], num, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 6), np.float32), "empty"),
        (np.zeros((4, 5), np.float32), "shape"),
        (np.full((2, 6), np.nan, np.float32), "NaN"),
        (np.array([["a"] * 6]), "numeric"),
    ],
)
def test_adapters_reject_bad_input(bad: np.ndarray, message: str) -> None:
    for m in (
        _torch_model(),
        SklearnAdapter(LogisticRegression(max_iter=200).fit(X, Y)),
        CallableAdapter(lambda v: np.full((len(v), 3), 1 / 3), n_classes=3, input_shape=6),
    ):
        with pytest.raises(InvalidInput, match=message):
            m.predict_proba(bad)


def test_flat_input_is_reshaped_for_image_models() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    m = TorchAdapter(net, input_shape=(1, 2, 2), n_classes=2)
    assert m.predict(np.zeros((3, 4), np.float32)).shape == (3,)


def test_torch_adapter_rejects_non_modules_and_wrong_width() -> None:
    with pytest.raises(InvalidInput, match=r"torch\.nn\.Module"):
        TorchAdapter(LogisticRegression(), input_shape=(6,), n_classes=3)  # type: ignore[arg-type]
    wrong = TorchAdapter(torch.nn.Linear(6, 4), input_shape=(6,), n_classes=3)
    with pytest.raises(InvalidInput, match="expected"):
        wrong.predict(X)
    with pytest.raises(InvalidInput, match="n_classes"):
        TorchAdapter(torch.nn.Linear(6, 4), input_shape=(6,), n_classes=1)
    with pytest.raises(InvalidInput, match="clip_values"):
        TorchAdapter(torch.nn.Linear(6, 4), input_shape=(6,), n_classes=4, clip_values=(1.0, 0.0))
    m = _torch_model()
    with pytest.raises(InvalidInput, match="labels outside"):
        m.loss_gradient(X[:2], np.array([0, 7]))


def test_sklearn_adapter_modes() -> None:
    names = np.array(["cat", "dog", "eel"])[Y]
    lr = SklearnAdapter(LogisticRegression(max_iter=500).fit(X, names))
    assert lr.n_classes == 3 and lr.input_shape == (6,) and not lr.label_only
    assert list(lr.classes) == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(lr.classes[lr.predict(X)], lr.estimator.predict(X))
    svc = SklearnAdapter(LinearSVC().fit(X, Y))  # decision_function only
    np.testing.assert_allclose(svc.predict_proba(X).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(svc.predict(X), svc.estimator.predict(X))
    tree = DecisionTreeClassifier(random_state=0).fit(X, Y)
    assert not supports_gradients(SklearnAdapter(tree))
    with pytest.raises(InvalidInput, match="not fitted"):
        SklearnAdapter(LogisticRegression())
    with pytest.raises(InvalidInput, match="no predict"):
        SklearnAdapter(object())


def test_callable_adapter_outputs() -> None:
    logits = CallableAdapter(lambda v: v[:, :3] * 10, n_classes=3, input_shape=(6,), outputs="logits")
    np.testing.assert_array_equal(logits.predict(X), X[:, :3].argmax(axis=1))
    labels = CallableAdapter(
        lambda v: (v[:, 0] > 0.5).astype(int), n_classes=2, input_shape=6, outputs="labels"
    )
    assert labels.label_only
    assert set(np.unique(labels.predict_proba(X))) <= {0.0, 1.0}
    bad = CallableAdapter(lambda v: v[:, :3] - 1, n_classes=3, input_shape=6)
    with pytest.raises(InvalidInput, match="negative probabilities"):
        bad.predict_proba(X)
    short = CallableAdapter(lambda v: np.ones((1, 3)), n_classes=3, input_shape=6)
    with pytest.raises(InvalidInput, match="returned shape"):
        short.predict_proba(X)
    nan = CallableAdapter(lambda v: np.full((len(v), 3), np.nan), n_classes=3, input_shape=6)
    with pytest.raises(InvalidInput, match="NaN"):
        nan.predict_proba(X)
    with pytest.raises(InvalidInput, match="outputs"):
        CallableAdapter(len, n_classes=3, input_shape=6, outputs="scores")  # type: ignore[arg-type]
    calls: list[int] = []
    batched = CallableAdapter(
        lambda v: calls.append(len(v)) or np.full((len(v), 3), 1 / 3),
        n_classes=3,
        input_shape=6,
        batch_size=16,
    )
    batched.predict(X)
    assert calls == [16, 16, 8]


class _OipHandler(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        return

    def do_POST(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization", ""))
        if not self.path.startswith("/v2/models/toy/infer"):
            self.send_response(404)
            self.end_headers()
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        probs = np.stack([x[:, 0], 1 - x[:, 0]], axis=1)
        out = {
            "outputs": [
                {
                    "name": "probs",
                    "shape": list(probs.shape),
                    "datatype": "FP32",
                    "data": probs.reshape(-1).tolist(),
                }
            ]
        }
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def oip_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OipHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_remote_adapter_open_inference_protocol(oip_server: str) -> None:
    secret = "Bearer s3cr3t-token"
    m = RemoteAdapter(
        oip_server, model="toy", n_classes=2, input_shape=6, headers={"Authorization": secret}, batch_size=15
    )
    p = m.predict_proba(X)
    np.testing.assert_allclose(p[:, 0], X[:, 0], atol=1e-6)
    assert _OipHandler.seen_auth[-1] == secret
    missing = RemoteAdapter(
        oip_server, model="nope", n_classes=2, input_shape=6, headers={"Authorization": secret}
    )
    with pytest.raises(ServiceError, match="HTTP 404") as info:
        missing.predict(X)
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(InvalidInput, match="http"):
        RemoteAdapter("file:///etc/passwd", model="toy", n_classes=2, input_shape=6)
    closed = RemoteAdapter("http://127.0.0.1:9", model="toy", n_classes=2, input_shape=6, timeout=2)
    with pytest.raises(ServiceError, match="unreachable"):
        closed.predict(X)


def _mock_remote(handler, **kwargs):  # type: ignore[no-untyped-def]
    import httpx

    return RemoteAdapter(
        "https://oip.example",
        model="toy",
        n_classes=2,
        input_shape=6,
        headers={"Authorization": "Bearer s3cr3t-token"},
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"content": b"not json"}, "invalid JSON"),
        ({"json": {"outputs": []}}, "no outputs"),
        ({"json": {"outputs": [{"name": "x", "shape": [3], "data": [1, 2]}]}}, "malformed output tensor"),
        ({"status_code": 500, "json": {"error": "boom"}}, "HTTP 500"),
        ({"status_code": 302, "headers": {"Location": "http://elsewhere/"}}, "HTTP 302"),  # no redirects
    ],
)
def test_remote_adapter_protocol_failures_are_one_service_error(answer: dict, message: str) -> None:  # type: ignore[type-arg]
    """Hostile or broken endpoints (a real server adds nothing here: MockTransport)."""
    import httpx

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            answer.get("status_code", 200), **{k: v for k, v in answer.items() if k != "status_code"}
        )

    with _mock_remote(handler) as m, pytest.raises(ServiceError, match=message) as info:
        m.predict(X[:3])
    assert "s3cr3t" not in str(info.value)
    assert (
        seen[0].url.path == "/v2/models/toy/infer"
        and seen[0].headers["authorization"] == "Bearer s3cr3t-token"
    )
    body = json.loads(seen[0].content)
    assert body["inputs"][0]["shape"] == [3, 6] and body["inputs"][0]["datatype"] == "FP32"


def test_remote_adapter_timeouts_and_named_outputs() -> None:
    import httpx

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with _mock_remote(slow) as m, pytest.raises(ServiceError, match="timed out"):
        m.predict(X[:2])

    def named(request: httpx.Request) -> httpx.Response:
        n = json.loads(request.content)["inputs"][0]["shape"][0]
        outputs = [
            {"name": "label", "shape": [n], "data": [1] * n},
            {"name": "probabilities", "shape": [n, 2], "data": [0.9, 0.1] * n},
        ]
        return httpx.Response(200, json={"outputs": outputs})

    with _mock_remote(named) as m:
        assert m.negotiate(X) == "probabilities" and not m.label_only
        np.testing.assert_allclose(m.predict_proba(X[:4])[:, 0], 0.9, atol=1e-6)
    with _mock_remote(named, output_name="missing") as m, pytest.raises(ServiceError, match="'missing'"):
        m.predict(X[:1])

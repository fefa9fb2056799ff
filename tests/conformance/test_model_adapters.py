"""The model-adapter contract (:class:`bastion.models.interface.ModelAdapter`), run for every adapter: torch,
scikit-learn, a plain callable and a remote OIP v2 endpoint.

The remote adapter is driven through ``httpx.MockTransport`` by a handler that runs the same linear model as
the others (the wire is the point here, not a socket: tests/models/test_adapters.py keeps a real server)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.models import (
    CallableAdapter,
    GradientAdapter,
    ModelAdapter,
    RemoteAdapter,
    SklearnAdapter,
    TorchAdapter,
    supports_gradients,
)

N_FEATURES, N_CLASSES = 5, 3
RNG = np.random.default_rng(0)
W = RNG.normal(size=(N_FEATURES, N_CLASSES)).astype(np.float32)
X = RNG.uniform(0, 1, size=(37, N_FEATURES)).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _torch() -> ModelAdapter:
    import torch

    layer = torch.nn.Linear(N_FEATURES, N_CLASSES, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W.T.copy()))
    return TorchAdapter(layer, input_shape=N_FEATURES, n_classes=N_CLASSES, batch_size=8)


def _sklearn() -> ModelAdapter:
    from sklearn.linear_model import LogisticRegression

    y = (X @ W).argmax(axis=1)
    return SklearnAdapter(LogisticRegression(C=1e3, max_iter=5000).fit(X, y))


def _callable() -> ModelAdapter:
    return CallableAdapter(
        lambda x: x.reshape(len(x), -1) @ W, n_classes=N_CLASSES, input_shape=N_FEATURES, outputs="logits"
    )


def _remote() -> ModelAdapter:
    def handler(request: httpx.Request) -> httpx.Response:
        tensor = json.loads(request.content)["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        p = _softmax(x @ W)
        return httpx.Response(
            200,
            json={
                "outputs": [{"name": "probabilities", "shape": list(p.shape), "data": p.reshape(-1).tolist()}]
            },
        )

    return RemoteAdapter(
        "https://model.example",
        model="m",
        n_classes=N_CLASSES,
        input_shape=N_FEATURES,
        batch_size=10,
        transport=httpx.MockTransport(handler),
    )


ADAPTERS: dict[str, Callable[[], ModelAdapter]] = {
    "torch": _torch,
    "sklearn": _sklearn,
    "callable": _callable,
    "remote": _remote,
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[Any]:
    model = ADAPTERS[request.param]()
    yield model
    close = getattr(model, "close", None)
    if close is not None:
        close()


def test_it_is_a_model_adapter_with_the_declared_shape(adapter: Any) -> None:
    assert isinstance(adapter, ModelAdapter)
    assert adapter.n_classes == N_CLASSES and tuple(adapter.input_shape) == (N_FEATURES,)


def test_probabilities_are_float32_rows_that_sum_to_one_and_labels_are_their_argmax(adapter: Any) -> None:
    p = adapter.predict_proba(X)
    assert p.dtype == np.float32 and p.shape == (len(X), N_CLASSES)
    assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    labels = adapter.predict(X)
    assert labels.dtype == np.int64 and labels.shape == (len(X),)
    np.testing.assert_array_equal(labels, p.argmax(axis=1))


def test_batching_does_not_change_the_answer(adapter: Any) -> None:
    whole = adapter.predict_proba(X)
    parts = np.concatenate([adapter.predict_proba(X[i : i + 4]) for i in range(0, len(X), 4)])
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    np.testing.assert_allclose(adapter.predict_proba(X[:1]), whole[:1], atol=1e-6)


def test_it_answers_for_the_linear_model_it_wraps(adapter: Any) -> None:
    """Every adapter here wraps the same linear scores: they agree on (almost) every label."""
    expected = (X @ W).argmax(axis=1)
    assert (adapter.predict(X) == expected).mean() >= 0.9


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, N_FEATURES), np.float32),
        np.zeros((3, N_FEATURES + 1), np.float32),
        np.full((2, N_FEATURES), np.nan, np.float32),
        np.array([["a"] * N_FEATURES]),
    ],
    ids=["empty", "wrong-shape", "nan", "not-numeric"],
)
def test_bad_batches_are_one_invalid_input_line(adapter: Any, bad: np.ndarray) -> None:
    with pytest.raises(InvalidInput) as info:
        adapter.predict_proba(bad)
    assert "\n" not in str(info.value)


def test_gradient_adapters_give_input_gradients_of_the_input_shape(adapter: Any) -> None:
    if not supports_gradients(adapter):
        pytest.skip("a black-box adapter")
    assert isinstance(adapter, GradientAdapter)
    y = adapter.predict(X)
    g = adapter.loss_gradient(X, y)
    assert g.shape == X.shape and g.dtype == np.float32 and np.isfinite(g).all()
    # the gradient points uphill: a small step along it raises the loss of the true class
    p0 = adapter.predict_proba(X)[np.arange(len(X)), y]
    p1 = adapter.predict_proba(np.clip(X + 1e-2 * np.sign(g), -10, 10))[np.arange(len(X)), y]
    assert (p1 <= p0 + 1e-6).mean() > 0.9

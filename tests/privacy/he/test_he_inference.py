"""Encrypted inference: agreement with plaintext, the secret key never reaches the server, bad input."""

from __future__ import annotations

import numpy as np
import pytest

tenseal = pytest.importorskip("tenseal")

from bastion.errors import CryptoError, InvalidInput, NotFound  # noqa: E402
from bastion.models.data import load_dataset  # noqa: E402
from bastion.privacy.he import (  # noqa: E402
    CkksParams,
    HEClient,
    evaluate,
    load_he_model,
    load_public_context,
    model_from_linear,
    save_he_model,
    serve_infer,
    train_logistic,
    train_poly_mlp,
)


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer")


@pytest.fixture(scope="module")
def logistic(cancer):
    return train_logistic(x=cancer.x_train, y=cancer.y_train)


@pytest.mark.slow
def test_logistic_breast_cancer_agrees_with_plaintext_packed_and_single(cancer, logistic) -> None:
    res = evaluate(model=logistic, x=cancer.x_test, y=cancer.y_test, single_samples=8)
    packed, single = res.layout("packed"), res.layout("single")
    assert packed.samples == cancer.n_test and single.samples == 8
    assert packed.agreement >= 0.99 and single.agreement >= 0.99
    assert packed.max_abs_error < 1e-3 and single.max_abs_error < 1e-3
    assert res.encrypted_accuracy == pytest.approx(res.plaintext_accuracy, abs=0.01)
    assert res.plaintext_accuracy > 0.9
    # one ciphertext per feature vs one per sample: the packed request is far smaller per sample
    assert packed.request_bytes / packed.samples < single.request_bytes / single.samples
    assert "speedup_packed_vs_single" in res.to_dict()


@pytest.mark.slow
def test_square_mlp_digits_agrees_with_plaintext() -> None:
    ds = load_dataset("digits")
    model = train_poly_mlp(x=ds.x_train, y=ds.y_train, n_classes=ds.n_classes, hidden=16, epochs=15)
    assert model.kind == "mlp" and model.depth == 3
    res = evaluate(model=model, x=ds.x_test, y=ds.y_test)
    assert [r.layout for r in res.layouts] == ["packed"]
    assert res.agreement >= 0.99
    assert res.plaintext_accuracy is not None and res.plaintext_accuracy >= 0.85


def test_server_context_has_no_secret_key_and_cannot_decrypt(cancer, logistic) -> None:
    client = HEClient.for_model(logistic)
    request = client.encrypt(cancer.x_test[:5])
    server_ctx = load_public_context(client.public_context())
    assert not server_ctx.is_private()
    # the attack: a server that keeps the ciphertexts tries to read them. With the secret key it could
    # (shown by the client); with the public context it cannot.
    from bastion.privacy.he._wire import MAGIC_REQUEST, unpack

    item = unpack(MAGIC_REQUEST, request).items[0]
    col = np.asarray(tenseal.ckks_vector_from(client._ctx, item).decrypt())
    assert np.allclose(col, cancer.x_test[:5, 0], atol=1e-4)
    with pytest.raises(ValueError):
        tenseal.ckks_vector_from(server_ctx, item).decrypt()


def test_server_refuses_a_context_with_the_secret_key(cancer, logistic) -> None:
    client = HEClient.for_model(logistic)
    private = client._ctx.serialize(save_secret_key=True)
    with pytest.raises(InvalidInput, match="secret key"):
        serve_infer(private, client.encrypt(cancer.x_test[:3]), logistic)


@pytest.mark.parametrize("mangle", ["garbage", "truncated", "empty"])
def test_tampered_context_is_a_clear_error(cancer, logistic, mangle) -> None:
    client = HEClient.for_model(logistic)
    ctx = client.public_context()
    bad = {
        "garbage": np.random.default_rng(0).bytes(4096),
        "truncated": ctx[: len(ctx) // 2],
        "empty": b"",
    }[mangle]
    with pytest.raises((CryptoError, InvalidInput)):
        serve_infer(bad, client.encrypt(cancer.x_test[:3]), logistic)


def test_malformed_payloads_are_rejected(cancer, logistic) -> None:
    client = HEClient.for_model(logistic)
    ctx = client.public_context()
    good = client.encrypt(cancer.x_test[:3])
    with pytest.raises(InvalidInput):
        serve_infer(ctx, b"NOPE" + good[4:], logistic)
    with pytest.raises(InvalidInput):
        serve_infer(ctx, good[:-10], logistic)
    with pytest.raises(InvalidInput):
        serve_infer(ctx, good + b"x", logistic)
    wrong_width = client.encrypt(cancer.x_test[:3, :10])
    with pytest.raises(InvalidInput, match="features"):
        serve_infer(ctx, wrong_width, logistic)
    # a ciphertext whose bytes were flipped no longer loads
    corrupted = bytearray(good)
    corrupted[200:260] = bytes(60)
    with pytest.raises((CryptoError, InvalidInput)):
        serve_infer(ctx, bytes(corrupted), logistic)


def test_single_layout_refuses_an_mlp() -> None:
    rng = np.random.default_rng(1)
    mlp_layers = ((rng.normal(size=(4, 3)), np.zeros(4)), (rng.normal(size=(2, 4)), np.zeros(2)))
    from bastion.privacy.he import HEModel

    mlp = HEModel(layers=mlp_layers, activation="square")
    with pytest.raises(InvalidInput, match="linear models only"):
        HEClient.for_model(mlp, layout="single")


def test_zero_weights_and_multiclass_linear() -> None:
    # digits has constant-zero pixels: their weights are exactly 0, which SEAL refuses to multiply by
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 5))
    w[:, 1] = 0.0
    w[2, :] = 0.0
    model = model_from_linear(w, [0.1, -0.2, 0.3])
    x = rng.normal(size=(40, 5))
    res = evaluate(model=model, x=x, single_samples=4)
    assert res.agreement == 1.0
    assert res.layout("packed").max_abs_error < 1e-3


def test_params_follow_depth() -> None:
    assert CkksParams.for_depth(1).poly_modulus_degree == 8192
    assert sum(CkksParams.for_depth(3).coeff_mod_bit_sizes) <= 218  # 128-bit security at N = 8192
    assert CkksParams.for_depth(4).poly_modulus_degree == 16384
    with pytest.raises(InvalidInput):
        CkksParams.for_depth(9)


def test_model_files_round_trip(tmp_path, cancer, logistic) -> None:
    path = save_he_model(logistic, tmp_path / "m.safetensors")
    again = load_he_model(path)
    assert np.array_equal(again.predict(cancer.x_test), logistic.predict(cancer.x_test))
    with pytest.raises(NotFound):
        load_he_model(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(InvalidInput):
        load_he_model(tmp_path / "junk.safetensors")
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(InvalidInput):
        load_he_model(tmp_path / "m.pkl")


def test_skops_logistic_regression_loads_and_other_types_are_refused(tmp_path, cancer) -> None:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(max_iter=500).fit(cancer.x_train, cancer.y_train)
    skops_io.dump(clf, tmp_path / "lr.skops")
    model = load_he_model(tmp_path / "lr.skops")
    assert np.array_equal(model.predict(cancer.x_test), clf.predict(cancer.x_test))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        cancer.x_train, cancer.y_train
    )
    skops_io.dump(pipe, tmp_path / "pipe.skops")
    with pytest.raises(InvalidInput, match="only a LogisticRegression"):
        load_he_model(tmp_path / "pipe.skops")


def test_bastion_train_directory_linear_ok_relu_refused(tmp_path, cancer) -> None:
    pytest.importorskip("torch")
    from bastion.models.recipes import MlpConfig, build_mlp, save_model

    linear_cfg = MlpConfig(n_features=cancer.n_features, n_classes=2, hidden=())
    save_model(
        build_mlp(n_features=cancer.n_features, n_classes=2, hidden=(), seed=0),
        tmp_path / "lin",
        config=linear_cfg,
    )
    model = load_he_model(tmp_path / "lin")
    assert model.kind == "linear" and model.n_outputs == 2
    relu_cfg = MlpConfig(n_features=cancer.n_features, n_classes=2, hidden=(8,))
    save_model(
        build_mlp(n_features=cancer.n_features, n_classes=2, hidden=(8,), seed=0),
        tmp_path / "relu",
        config=relu_cfg,
    )
    with pytest.raises(InvalidInput, match="ReLU"):
        load_he_model(tmp_path / "relu")

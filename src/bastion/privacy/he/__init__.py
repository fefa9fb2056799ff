"""Homomorphic-encryption inference (TenSEAL CKKS): the client keeps the key, the server computes blind.

``evaluate(model=..., x=...)`` runs client encrypt → server infer → client decrypt end to end, in both the
packed (feature-major SIMD) layout and TenSEAL's one-sample-per-ciphertext layout, and reports label
agreement with the plaintext model and latency per sample. ``serve_infer(context_bytes, ciphertext_bytes,
model)`` is the server half the gateway exposes over HTTP. See :mod:`._ckks` for the scheme and parameters
and :mod:`._model` for the models it accepts (linear/logistic, MLPs with a square activation);
:func:`load_registry_model` loads one from a verified registry version (``NAME[:VERSION|@ENV]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bastion.errors import InvalidInput
from bastion.privacy.he._ckks import CkksParams, HEClient, load_public_context, serve_infer
from bastion.privacy.he._model import (
    HEModel,
    load_data_file,
    load_he_model,
    model_from_linear,
    model_from_sklearn,
    model_from_torch,
    save_he_model,
    train_logistic,
    train_poly_mlp,
)
from bastion.privacy.he._registry import (
    RegistryModel,
    load_artifact_model,
    load_registry_model,
    looks_like_registry_ref,
)

MAX_EVAL_SAMPLES = 100_000


@dataclass(frozen=True)
class LayoutResult:
    """One layout's end-to-end figures on ``samples`` rows."""

    layout: str
    samples: int
    agreement: float
    max_abs_error: float
    encrypt_seconds: float
    server_seconds: float
    decrypt_seconds: float
    request_bytes: int
    response_bytes: int
    context_bytes: int

    @property
    def ms_per_sample(self) -> float:
        return 1000.0 * (self.encrypt_seconds + self.server_seconds + self.decrypt_seconds) / self.samples

    @property
    def server_ms_per_sample(self) -> float:
        return 1000.0 * self.server_seconds / self.samples

    def to_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["ms_per_sample"] = self.ms_per_sample
        d["server_ms_per_sample"] = self.server_ms_per_sample
        return d


@dataclass(frozen=True)
class HEEvaluation:
    """Agreement of encrypted with plaintext predictions, per layout; accuracy when labels were given."""

    model_kind: str
    n_features: int
    n_classes: int
    depth: int
    samples: int
    plaintext_accuracy: float | None
    encrypted_accuracy: float | None
    layouts: tuple[LayoutResult, ...]

    @property
    def agreement(self) -> float:
        return min(r.agreement for r in self.layouts)

    def layout(self, name: str) -> LayoutResult:
        for r in self.layouts:
            if r.layout == name:
                return r
        raise InvalidInput(f"layout {name!r} was not evaluated")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "model_kind": self.model_kind,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "depth": self.depth,
            "samples": self.samples,
            "agreement": self.agreement,
            "plaintext_accuracy": self.plaintext_accuracy,
            "encrypted_accuracy": self.encrypted_accuracy,
            "layouts": {r.layout: r.to_dict() for r in self.layouts},
        }
        names = {r.layout for r in self.layouts}
        if {"packed", "single"} <= names:
            out["speedup_packed_vs_single"] = (
                self.layout("single").ms_per_sample / self.layout("packed").ms_per_sample
            )
        return out


def _run_layout(model: HEModel, x: np.ndarray, layout: str) -> tuple[LayoutResult, np.ndarray]:
    client = HEClient.for_model(model, layout=layout)
    context = client.public_context()
    t0 = time.perf_counter()
    request = client.encrypt(x, layout=layout)
    t1 = time.perf_counter()
    response = serve_infer(context, request, model)
    t2 = time.perf_counter()
    logits = client.decrypt(response)
    t3 = time.perf_counter()
    plain = model.logits(x)
    agree = float((model.labels_from_logits(logits) == model.labels_from_logits(plain)).mean())
    result = LayoutResult(
        layout=layout,
        samples=int(x.shape[0]),
        agreement=agree,
        max_abs_error=float(np.abs(logits - plain).max()),
        encrypt_seconds=t1 - t0,
        server_seconds=t2 - t1,
        decrypt_seconds=t3 - t2,
        request_bytes=len(request),
        response_bytes=len(response),
        context_bytes=len(context),
    )
    return result, logits


def evaluate(
    *,
    model: HEModel,
    x: np.ndarray,
    y: np.ndarray | None = None,
    layouts: tuple[str, ...] | None = None,
    single_samples: int = 16,
) -> HEEvaluation:
    """Encrypt ``x``, infer on the ciphertexts, decrypt, and compare with the plaintext model.

    The packed layout runs on every row; the one-sample layout (slow: tens of ms per sample, linear models
    only) on the first ``single_samples`` rows. By default both run for a linear model, packed for an MLP.
    """
    if layouts is None:
        layouts = ("packed", "single") if model.kind == "linear" else ("packed",)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InvalidInput("data must be a non-empty 2-D array (samples × features)")
    if arr.shape[0] > MAX_EVAL_SAMPLES:
        raise InvalidInput(f"at most {MAX_EVAL_SAMPLES} samples per evaluation")
    if arr.shape[1] != model.n_features:
        raise InvalidInput(f"model expects {model.n_features} features, data has {arr.shape[1]}")
    if y is not None and len(y) != arr.shape[0]:
        raise InvalidInput("labels and samples differ in number")
    if not layouts or any(name not in ("packed", "single") for name in layouts):
        raise InvalidInput("layouts must be a non-empty subset of packed, single")
    if single_samples < 1:
        raise InvalidInput("single_samples must be ≥ 1")
    results = []
    enc_labels = None
    for name in layouts:
        rows = arr if name == "packed" else arr[:single_samples]
        res, logits = _run_layout(model, rows, name)
        results.append(res)
        if name == "packed":
            enc_labels = model.labels_from_logits(logits)
    plain_acc = enc_acc = None
    if y is not None:
        yy = np.asarray(y)
        plain_acc = float((model.predict(arr) == yy).mean())
        if enc_labels is not None:
            enc_acc = float((enc_labels == yy).mean())
    return HEEvaluation(
        model_kind=model.kind,
        n_features=model.n_features,
        n_classes=model.n_classes,
        depth=model.depth,
        samples=int(arr.shape[0]),
        plaintext_accuracy=plain_acc,
        encrypted_accuracy=enc_acc,
        layouts=tuple(results),
    )


__all__ = [
    "CkksParams",
    "HEClient",
    "HEEvaluation",
    "HEModel",
    "LayoutResult",
    "RegistryModel",
    "evaluate",
    "load_artifact_model",
    "load_data_file",
    "load_he_model",
    "load_public_context",
    "load_registry_model",
    "looks_like_registry_ref",
    "model_from_linear",
    "model_from_sklearn",
    "model_from_torch",
    "save_he_model",
    "serve_infer",
    "train_logistic",
    "train_poly_mlp",
]

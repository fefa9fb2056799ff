"""CKKS (Cheon, Kim, Kim, Song 2017) encrypted inference with TenSEAL: client and server halves.

* The client (:class:`HEClient`) makes the context, keeps the secret key, and sends the server only
  ``make_context_public()``'s serialisation (public, relinearisation and, for the one-sample layout, Galois
  keys). It encrypts, and decrypts the logits; labels are the sign / argmax of the decrypted logits.
* The server (:func:`serve_infer`) loads that context, refuses one that carries a secret key, and evaluates
  the model on ciphertexts with plaintext weights.

Two layouts. ``packed`` (feature-major SIMD): ciphertext ``j`` holds feature ``j`` of up to N/2 samples, so a
linear layer is a weighted sum of ciphertexts with scalar plaintext weights — no rotations, no Galois keys,
and the cost is shared by every sample in the batch. ``single``: one sample per ciphertext, evaluated with
``dot``/``mm`` (rotations, Galois keys) as in TenSEAL's encrypted logistic-regression tutorial; kept as the
baseline, for linear models only.

Parameters follow the model's multiplicative depth: N = 8192 with 2^40 scale for depth ≤ 2, N = 8192 with a
2^30 scale and three middle primes for depth 3 (the square-activation MLP), within the 218-bit budget that
128-bit security allows at N = 8192; N = 16384 beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import CryptoError, DependencyMissing, InvalidInput
from bastion.privacy.he._model import HEModel
from bastion.privacy.he._wire import MAGIC_REQUEST, MAGIC_RESPONSE, Envelope, pack, unpack

MAX_CONTEXT_BYTES = 256 * 1024 * 1024


def _ts() -> Any:
    try:
        import tenseal as ts
    except ImportError as exc:
        raise DependencyMissing(
            "tenseal is needed for encrypted inference", hint="pip install 'bastion-ml[he]'"
        ) from exc
    return ts


@dataclass(frozen=True)
class CkksParams:
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @classmethod
    def for_depth(cls, depth: int) -> CkksParams:
        if depth < 1:
            raise InvalidInput("model depth must be ≥ 1")
        if depth <= 2:
            return cls(8192, (60, 40, 40, 60), 40)
        if depth == 3:
            return cls(8192, (52, 34, 34, 34, 52), 34)
        if depth <= 7:
            return cls(16384, (60, *([40] * depth), 60), 40)
        raise InvalidInput(f"model depth {depth} is too deep for CKKS inference here (at most 7)")


class HEClient:
    """The data owner's side: holds the secret key, encrypts inputs and decrypts results."""

    def __init__(self, *, params: CkksParams, galois_keys: bool = False) -> None:
        ts = _ts()
        self.params = params
        self._ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
        self._ctx.global_scale = 2.0**params.scale_bits
        if galois_keys:
            self._ctx.generate_galois_keys()
        self._public: bytes | None = None

    @classmethod
    def for_model(cls, model: HEModel, *, layout: str = "packed") -> HEClient:
        if layout not in ("packed", "single"):
            raise InvalidInput(f"layout must be packed or single, got {layout!r}")
        if layout == "single":
            check_single_layout(model)
        return cls(params=CkksParams.for_depth(model.depth), galois_keys=layout == "single")

    def public_context(self) -> bytes:
        """The serialised context without the secret key: all the server ever gets."""
        if self._public is None:
            pub = self._ctx.copy()
            pub.make_context_public()
            self._public = bytes(pub.serialize(save_secret_key=False))
        return self._public

    def encrypt(self, x: np.ndarray, *, layout: str = "packed") -> bytes:
        """Encrypt rows of ``x`` (samples × features) as a request payload."""
        ts = _ts()
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise InvalidInput("expected a non-empty 2-D array (samples × features)")
        if not np.isfinite(arr).all():
            raise InvalidInput("inputs must be finite")
        items: list[bytes] = []
        if layout == "packed":
            slots = self.params.slots
            batches = []
            for start in range(0, arr.shape[0], slots):
                block = arr[start : start + slots]
                batches.append(block.shape[0])
                items.extend(bytes(ts.ckks_vector(self._ctx, col.tolist()).serialize()) for col in block.T)
            env = Envelope("packed", tuple(batches), arr.shape[1], tuple(items))
        elif layout == "single":
            items = [bytes(ts.ckks_vector(self._ctx, row.tolist()).serialize()) for row in arr]
            env = Envelope("single", (arr.shape[0],), arr.shape[1], tuple(items))
        else:
            raise InvalidInput(f"layout must be packed or single, got {layout!r}")
        return pack(MAGIC_REQUEST, env)

    def decrypt(self, payload: bytes) -> np.ndarray:
        """Decrypt a response payload into logits (samples × outputs)."""
        ts = _ts()
        env = unpack(MAGIC_RESPONSE, payload)
        try:
            vectors = [np.asarray(ts.ckks_vector_from(self._ctx, item).decrypt()) for item in env.items]
        except Exception as exc:
            raise CryptoError("could not decrypt the server's response") from exc
        if env.layout == "packed":
            out = []
            for gi, group in enumerate(env.groups()):
                n = env.batches[gi]
                vecs = vectors[gi * env.width : gi * env.width + len(group)]
                out.append(np.stack([v[:n] for v in vecs], axis=1))
            return np.concatenate(out, axis=0)
        return np.stack([v[: env.width] for v in vectors], axis=0)


def check_single_layout(model: HEModel) -> None:
    """The one-sample layout (TenSEAL's encrypted logistic regression) takes linear models only: ``mm``
    leaves rotated copies in the slots past the vector's length, which a second ``mm`` would add in."""
    if len(model.layers) != 1:
        raise InvalidInput("the one-sample layout supports linear models only; use the packed layout")


def load_public_context(context_bytes: bytes) -> Any:
    """Parse a client's context; refuse garbage (CryptoError) and one that carries a secret key."""
    ts = _ts()
    if not isinstance(context_bytes, bytes | bytearray) or not context_bytes:
        raise InvalidInput("encryption context must be non-empty bytes")
    if len(context_bytes) > MAX_CONTEXT_BYTES:
        raise InvalidInput("encryption context too large")
    try:
        ctx = ts.context_from(bytes(context_bytes))
    except Exception as exc:
        raise CryptoError("invalid encryption context") from exc
    try:
        private = ctx.is_private()
        scheme_ok = ctx.has_public_key() if hasattr(ctx, "has_public_key") else True
    except Exception as exc:
        raise CryptoError("invalid encryption context") from exc
    if private:
        raise InvalidInput(
            "the encryption context carries a secret key; send make_context_public()'s serialisation",
        )
    if not scheme_ok:
        raise CryptoError("invalid encryption context")
    return ctx


def _scalar_linear(
    ts: Any, ctx: Any, inputs: list[Any], weight: np.ndarray, bias: np.ndarray, n: int
) -> list[Any]:
    """Feature-major linear layer: out_k = Σ_j W[k, j] · ct_j + b_k (plaintext scalars, no rotations)."""
    outs = []
    for k in range(weight.shape[0]):
        acc = None
        for j, ct in enumerate(inputs):
            w = float(weight[k, j])
            if w == 0.0:  # SEAL refuses a product with an all-zero plaintext (transparent ciphertext)
                continue
            term = ct * w
            acc = term if acc is None else acc + term
        acc = ts.ckks_vector(ctx, [float(bias[k])] * n) if acc is None else acc + float(bias[k])
        outs.append(acc)
    return outs


def serve_infer(context_bytes: bytes, ciphertext_bytes: bytes, model: HEModel) -> bytes:
    """The server side: evaluate ``model`` on the client's ciphertexts; returns the encrypted logits.

    The server holds no secret key and learns nothing about the inputs or outputs. Raises CryptoError for a
    context or ciphertext that does not load, InvalidInput for a malformed payload, a context with a secret
    key, a feature-count mismatch or a context with too few levels for the model.
    """
    ts = _ts()
    ctx = load_public_context(context_bytes)
    env = unpack(MAGIC_REQUEST, ciphertext_bytes)
    try:
        vectors = [ts.ckks_vector_from(ctx, item) for item in env.items]
    except Exception as exc:
        raise CryptoError("invalid ciphertext for this context") from exc
    out_items: list[bytes] = []
    try:
        if env.layout == "packed":
            if env.width != model.n_features:
                raise InvalidInput(f"model expects {model.n_features} features, payload has {env.width}")
            for gi, n in enumerate(env.batches):
                h = vectors[gi * env.width : (gi + 1) * env.width]
                if any(v.size() != n for v in h):
                    raise InvalidInput("packed ciphertext length does not match its batch size")
                for li, (weight, bias) in enumerate(model.layers):
                    h = _scalar_linear(ts, ctx, h, weight, bias, n)
                    if li < len(model.layers) - 1 and model.activation == "square":
                        h = [v.square() for v in h]
                out_items.extend(bytes(v.serialize()) for v in h)
            resp = Envelope("packed", env.batches, model.n_outputs, tuple(out_items))
        else:
            check_single_layout(model)
            for ct in vectors:
                if ct.size() != model.n_features:
                    raise InvalidInput(
                        f"model expects {model.n_features} features, ciphertext has {ct.size()}"
                    )
                h = ct
                for li, (weight, bias) in enumerate(model.layers):
                    if weight.shape[0] == 1:
                        h = h.dot(weight[0].tolist()) + float(bias[0])
                    else:
                        h = h.mm(weight.T.tolist()) + bias.tolist()
                    if li < len(model.layers) - 1 and model.activation == "square":
                        h = h.square()
                out_items.append(bytes(h.serialize()))
            resp = Envelope("single", env.batches, model.n_outputs, tuple(out_items))
    except InvalidInput:
        raise
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(
            "the encryption context cannot evaluate this model (too few levels, missing keys or bad scale)"
        ) from exc
    return pack(MAGIC_RESPONSE, resp)

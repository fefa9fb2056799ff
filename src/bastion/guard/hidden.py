"""A hidden layer over the hashed n-grams (fastText-style; issue 16 round 7c, opt-in).

The n-gram buckets of :func:`bastion.guard.classifier.ngram_buckets` (hashed into the model's ``dim``) index a
learned embedding table of ``dim`` rows (the bucket's low bits: ``bucket & (dim - 1)``, so the table may be
smaller than the linear model's vector). A text (or a window of it) is the sum of its n-grams' rows over the
same length norm as the linear model (sqrt of the n-gram count, with the floor and cap), then one dense ReLU
layer and a linear output unit: ``w2 . relu(W1 v + b1)``. The rule hits and the bias stay linear terms of the
output logit. Scoring is a gather, a prefix sum over positions (so every window costs two rows) and a small
matrix product; no torch at runtime.

Stored in the signed model JSON under the ``hidden`` key: ``format`` (:data:`HIDDEN_FORMAT`), ``dim``,
``embed``, ``units``, the embedding as int8 (base64, row-major) with one float scale per column, and the dense
layers as float16 (base64).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import InvalidInput

HIDDEN_FORMAT = "bastion-guard-hidden/1"
_KEYS = frozenset({"format", "dim", "embed", "units", "embedding", "scale", "w1", "b1", "w2"})
MAX_UNITS = 256
MAX_EMBED = 256


@dataclass(frozen=True)
class HiddenLayer:
    """Embedding (``dim`` x ``embed``, float32 after dequantisation), ``w1`` (``embed`` x ``units``), ``b1``,
    ``w2`` (``units``)."""

    dim: int
    embedding: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray

    def windows(
        self,
        pos: np.ndarray,
        buckets: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        norms: np.ndarray,
    ) -> np.ndarray:
        """The hidden part of the logit for each position range ``[starts, ends)`` divided by ``norms``."""
        order = np.argsort(pos, kind="stable")
        spos = pos[order]
        rows = self.embedding[buckets[order] & (self.dim - 1)]
        csum = np.vstack((np.zeros((1, rows.shape[1]), dtype=np.float32), np.cumsum(rows, axis=0)))
        lo = np.searchsorted(spos, starts, side="left")
        hi = np.searchsorted(spos, ends, side="left")
        v = (csum[hi] - csum[lo]) / norms[:, None].astype(np.float32)
        h = np.maximum(v @ self.w1 + self.b1, 0.0)
        return np.asarray(h @ self.w2, dtype=np.float64)


def _f16(doc: dict[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.frombuffer(base64.b64decode(doc[key], validate=True), dtype="<f2").astype(np.float32)
    if arr.size != math.prod(shape):
        raise InvalidInput(f"hidden {key} does not match its shape")
    return arr.reshape(shape)


def parse_hidden(doc: Any) -> HiddenLayer:
    """The hidden layer of a verified model document's ``hidden`` part; :class:`InvalidInput` if malformed."""
    if not isinstance(doc, dict) or doc.get("format") != HIDDEN_FORMAT:
        raise InvalidInput(f"hidden part is not {HIDDEN_FORMAT}")
    if set(doc) - _KEYS:
        raise InvalidInput("unknown hidden keys")
    dim, embed, units = int(doc["dim"]), int(doc["embed"]), int(doc["units"])
    if dim <= 0 or dim & (dim - 1) or not 0 < embed <= MAX_EMBED or not 0 < units <= MAX_UNITS:
        raise InvalidInput("hidden dim, embed or units out of range")
    q = np.frombuffer(base64.b64decode(doc["embedding"], validate=True), dtype=np.int8)
    if q.size != dim * embed:
        raise InvalidInput("hidden embedding does not match dim x embed")
    scale = np.asarray(doc["scale"], dtype=np.float32)
    if scale.shape != (embed,):
        raise InvalidInput("hidden scale does not match embed")
    embedding = q.reshape(dim, embed).astype(np.float32) * scale
    return HiddenLayer(
        dim=dim,
        embedding=embedding,
        w1=_f16(doc, "w1", (embed, units)),
        b1=_f16(doc, "b1", (units,)),
        w2=_f16(doc, "w2", (units,)),
    )


def quantise(embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 table, per-column scale): symmetric, each column's largest magnitude maps to 127."""
    emb = np.asarray(embedding, dtype=np.float32)
    scale = np.maximum(np.abs(emb).max(axis=0), 1e-8) / 127.0
    return np.clip(np.rint(emb / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def hidden_document(layer: HiddenLayer) -> dict[str, Any]:
    """The JSON part for ``layer`` (its embedding quantised to int8; what :func:`parse_hidden` reads back)."""
    q, scale = quantise(layer.embedding)

    def f16(a: np.ndarray) -> str:
        return base64.b64encode(np.asarray(a, dtype="<f2").tobytes()).decode("ascii")

    return {
        "format": HIDDEN_FORMAT,
        "dim": layer.dim,
        "embed": int(layer.embedding.shape[1]),
        "units": int(layer.w2.shape[0]),
        "embedding": base64.b64encode(q.tobytes()).decode("ascii"),
        "scale": [float(s) for s in scale],
        "w1": f16(layer.w1),
        "b1": f16(layer.b1),
        "w2": f16(layer.w2),
    }


def dequantised(layer: HiddenLayer) -> HiddenLayer:
    """``layer`` as it will score after a JSON round trip (int8 embedding, float16 dense weights)."""
    q, scale = quantise(layer.embedding)
    f16 = [np.asarray(a, dtype=np.float16).astype(np.float32) for a in (layer.w1, layer.b1, layer.w2)]
    return HiddenLayer(layer.dim, q.astype(np.float32) * scale, *f16)


__all__ = ["HIDDEN_FORMAT", "HiddenLayer", "dequantised", "hidden_document", "parse_hidden", "quantise"]

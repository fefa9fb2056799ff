"""Answers that make a stolen copy worse: keyed adaptive misinformation and argmax-preserving poisoning.

* :func:`misinform` — adaptive misinformation (Kariyappa & Qureshi, "Defending Against Model Stealing
  Attacks with Adaptive Misinformation", CVPR 2020): out-of-distribution queries get the answer of a
  *misinformation function* instead of the model's. Deviation: the paper trains a second network to put its
  mass on wrong classes and blends the two answers with a sigmoid of the OOD score; here the misinformation
  function is the model's own probability vector with the classes moved by a keyed derangement (so every
  misinformed answer is wrong, confident where the model is confident, and consistent across repeats, which
  keeps it from being filtered out as noise), and the switch is hard (the caller decides which rows).
* :func:`poison` — prediction poisoning (Orekondy, Schiele, Fritz, "Prediction Poisoning: Towards Defenses
  Against DNN Model Stealing Attacks", ICLR 2020), argmax-preserving variant. Deviation: the paper's MAD
  picks the perturbation that turns a surrogate's gradient furthest away, which needs a surrogate; this is
  the paper's argmax-preserving *random-direction* baseline (keyed noise on the simplex, projected so the top
  class stays on top). It costs benign top-1 accuracy nothing; it only hurts soft-label distillation.
* :func:`truncate` — rounding and top-k truncation (Tramèr et al., USENIX Security 2016).

All randomness is keyed (HKDF sub-keys), so an attacker who knows the code cannot predict it.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

from bastion.errors import InvalidInput


def keyed_generator(secret: bytes, label: str) -> np.random.Generator:
    """A numpy generator seeded by ``HMAC-SHA256(secret, label)`` (secret parameters, not key material)."""
    digest = hmac.new(secret, label.encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def derangement(secret: bytes, consumer: str, n_classes: int) -> np.ndarray:
    """A keyed permutation of ``range(n_classes)`` with no fixed point (for two classes: the swap)."""
    if n_classes < 2:
        raise InvalidInput("misinformation needs at least two classes")
    rng = keyed_generator(secret, f"derangement:{consumer}:{n_classes}")
    while True:
        perm = rng.permutation(n_classes)
        if not np.any(perm == np.arange(n_classes)):
            return perm


def misinform(proba: np.ndarray, *, secret: bytes, consumer: str) -> np.ndarray:
    """Each row's probabilities moved to the keyed derangement's classes: argmax always changes."""
    p = np.asarray(proba, dtype=np.float64)
    perm = derangement(secret, consumer, p.shape[1])
    out = np.empty_like(p)
    out[:, perm] = p  # the mass of class c goes to class perm[c]
    return out


def poison(
    proba: np.ndarray, *, secret: bytes, consumer: str, eps: float, x_digest: np.ndarray
) -> np.ndarray:
    """Keyed argmax-preserving noise of L1 size up to ``2·eps`` on each row.

    ``x_digest`` (one int per row) makes the noise a deterministic function of the query, so a repeated query
    gets the same answer and averaging repeats does not remove it.
    """
    p = np.asarray(proba, dtype=np.float64)
    if not 0.0 <= eps <= 1.0:
        raise InvalidInput("poison eps must be in [0, 1]")
    targets = np.stack(
        [
            keyed_generator(secret, f"poison:{consumer}:{int(d)}").dirichlet(np.ones(p.shape[1]))
            for d in x_digest
        ]
    )
    top = p.argmax(axis=1)
    rows = np.arange(len(p))
    gap = p[rows, top][:, None] - p  # > 0 off the top class (ties: 0)
    dgap = targets[rows, top][:, None] - targets
    shrink = gap - dgap  # the gap to class j at mix t is gap_j - t * shrink_j
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = np.where(shrink > 0, gap / shrink, np.inf)
    limit[rows, top] = np.inf
    t = np.minimum(eps, 0.9 * limit.min(axis=1))[:, None]
    return (1.0 - t) * p + t * targets


def truncate(proba: np.ndarray, *, top_k: int, decimals: int) -> np.ndarray:
    """Keep the ``top_k`` largest probabilities (others 0), rounded to ``decimals``."""
    p = np.asarray(proba, dtype=np.float64)
    k = max(1, min(int(top_k), p.shape[1]))
    out = np.zeros_like(p)
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    np.put_along_axis(out, idx, np.take_along_axis(p, idx, axis=1), axis=1)
    return np.round(out, int(decimals))


__all__ = ["derangement", "keyed_generator", "misinform", "poison", "truncate"]

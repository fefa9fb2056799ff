"""Answers that make a stolen copy worse: keyed adaptive misinformation and argmax-preserving poisoning.

* :func:`misinform` — adaptive misinformation (Kariyappa & Qureshi, "Defending Against Model Stealing
  Attacks with Adaptive Misinformation", CVPR 2020): out-of-distribution queries get the answer of a
  *misinformation function* instead of the model's. Deviation: the paper trains a second network to put its
  mass on wrong classes and blends the two answers with a sigmoid of the OOD score; here the misinformation
  function is a keyed *decoy*: the input space is cut into cells by a keyed grid over a few random projections
  (:func:`decoy_cells`), each cell has a keyed ranking of the classes, and a misinformed answer puts the
  model's sorted probabilities on that ranking (so it is as confident as the model, the same for every
  query in the cell, and its label is the cell's decoy class *whatever the model says*); the switch is hard
  (the caller decides which rows). Round 6 (attack20 F1): one class *derangement per consumer* was learnt
  from ~10 rows of known label and inverted every later answer. The decoy carries no information about the
  model's label, so there is nothing to invert; it is one function per deployment (not per consumer, so
  accounts cannot out-vote it) and constant over a cell, so a surrogate fits it as it would a model (a
  fresh random label per row would be symmetric label noise, which a surrogate averages through).
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


def decoy_cells(
    x: np.ndarray, *, secret: bytes, scale: float, width: float = 2.0, projections: int = 3
) -> np.ndarray:
    """Each row's cell (a uint64) in a keyed grid over ``projections`` random directions, ``width`` x
    ``scale`` (the data's spread along a direction) wide: a few cells per direction over the data. Wider cells
    pull a surrogate harder (digits, a 2,000-row mixup copy answered in part: 0.81 at width 1, 0.69 at 2)
    but a row of known label then covers more of its cell (the attacker learns that cell's decoy, never the
    model's label: inverting with it is no better than the label of its nearest known row)."""
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if scale <= 0 or width <= 0 or projections < 1:
        raise InvalidInput("decoy cells need a positive scale and width and at least one projection")
    rng = keyed_generator(secret, f"cells:{rows.shape[1]}:{projections}")
    w = rng.standard_normal((rows.shape[1], projections))
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    grid = np.floor(rows @ w / (width * scale) + rng.uniform(0.0, 1.0, projections)).astype(np.int64)
    return np.array(
        [int.from_bytes(hashlib.blake2b(g.tobytes(), digest_size=8).digest(), "big") for g in grid],
        dtype=np.uint64,
    )


def misinform(proba: np.ndarray, *, secret: bytes, cells: np.ndarray) -> np.ndarray:
    """Each row's probabilities, sorted, put on its cell's keyed ranking of the classes (the decoy's answer).

    The label is the cell's keyed decoy class, independent of the model's label; ``cells`` from
    :func:`decoy_cells` (one per row).
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or len(cells) != len(p):
        raise InvalidInput("misinformation needs one cell per row and at least two classes")
    ranked = -np.sort(-p, axis=1)
    out = np.empty_like(p)
    ranking: dict[int, np.ndarray] = {}
    for i, c in enumerate(cells):
        key = int(c)
        if key not in ranking:
            ranking[key] = keyed_generator(secret, f"decoy:{key}").permutation(p.shape[1])
        out[i, ranking[key]] = ranked[i]  # class ranking[k] gets the k-th largest probability
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


__all__ = ["decoy_cells", "keyed_generator", "misinform", "poison", "truncate"]

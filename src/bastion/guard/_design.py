"""The guard heads' training design matrix and weight encoding (used by ``_train`` and the training scripts,
never at scan time): n-gram counts over the same length norm as scoring, then rule hits."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from bastion.guard._hashing import length_norm, ngram_buckets
from bastion.guard.rules import RULE_NAMES, rule_hits


def features(
    texts: list[str],
    *,
    dim: int,
    ngrams: tuple[int, ...],
    word_ngrams: int = 0,
    fold_marks: bool = False,
    cjk_bigrams: bool = False,
    length_cap: int = 0,
    length_floor: int = 0,
    sea_bigrams: bool = False,
    negations: bool = False,
) -> Any:
    """The training design matrix (scipy CSR): n-gram counts / sqrt(n-gram count) (see :func:`length_norm`),
    then rule hits."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        families = ngram_buckets(
            text,
            dim=dim,
            ngrams=ngrams,
            word_ngrams=word_ngrams,
            fold_marks=fold_marks,
            cjk_bigrams=cjk_bigrams,
            sea_bigrams=sea_bigrams,
            negations=negations,
        )
        buckets = [b for _, b in families]
        if buckets:
            allb = np.concatenate(buckets)
            uniq, counts = np.unique(allb, return_counts=True)
            rows.append(np.full(len(uniq), i))
            cols.append(uniq)
            vals.append(counts / length_norm(len(allb), length_cap, length_floor))
        hits = [RULE_NAMES.index(r.name) for r in rule_hits(text)]
        if hits:
            rows.append(np.full(len(hits), i))
            cols.append(dim + np.asarray(hits))
            vals.append(np.ones(len(hits)))
    if not rows:
        return sparse.csr_matrix((len(texts), dim + len(RULE_NAMES)))
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(texts), dim + len(RULE_NAMES)),
    )


def encode_weights(weights: np.ndarray) -> str:
    return base64.b64encode(np.asarray(weights, dtype="<f2").tobytes()).decode("ascii")


__all__ = ["encode_weights", "features"]

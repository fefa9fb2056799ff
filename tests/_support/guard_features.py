"""Hashed n-gram families of a text and their comparison (the guard's feature-flag tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def families(text: str, **kw: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """``ngram_buckets`` with the shipped heads' n-gram orders and the feature flags ``kw``."""
    from bastion.guard._hashing import ngram_buckets

    return ngram_buckets(text, dim=1 << 18, ngrams=(3, 4, 5), word_ngrams=2, **kw)


def same(a: list[Any], b: list[Any]) -> bool:
    """The same families: positions and buckets equal, in the same order."""
    return len(a) == len(b) and all(
        np.array_equal(p, q) and np.array_equal(x, y) for (p, x), (q, y) in zip(a, b, strict=True)
    )

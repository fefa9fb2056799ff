"""Output hardening: return less than the full probability vector (Tramèr et al., "Stealing Machine Learning
Models via Prediction APIs", USENIX Security 2016, discuss these countermeasures).

:class:`HardenedAdapter` wraps any model and answers with the top-k probabilities only, probabilities rounded
to a few decimals, or labels only. It deliberately exposes neither logits nor gradients, so attacks that
see it see exactly what an API client would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter


class HardenedAdapter:
    """A black-box view of ``model`` with ``top_k``, ``decimals`` and/or ``label_only`` hardening."""

    def __init__(
        self,
        model: ModelAdapter,
        *,
        top_k: int | None = None,
        decimals: int | None = None,
        label_only: bool = False,
    ) -> None:
        if top_k is not None and not 1 <= top_k <= model.n_classes:
            raise InvalidInput(f"top_k must be between 1 and {model.n_classes}")
        if decimals is not None and not 0 <= decimals <= 8:
            raise InvalidInput("decimals must be between 0 and 8")
        if top_k is None and decimals is None and not label_only:
            raise InvalidInput("choose at least one hardening: top_k, decimals or label_only")
        self._model = model
        self.top_k = top_k
        self.decimals = decimals
        self.label_only = bool(label_only)
        self.clip_values = getattr(model, "clip_values", None)

    @property
    def n_classes(self) -> int:
        return self._model.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._model.input_shape

    def describe(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "decimals": self.decimals, "label_only": self.label_only}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.asarray(self._model.predict_proba(x), dtype=np.float32)
        rows = np.arange(p.shape[0])
        top = p.argmax(axis=1)
        if self.label_only:
            out = np.zeros_like(p)
            out[rows, top] = 1.0
            return out
        if self.top_k is not None:
            kth = np.sort(p, axis=1)[:, -self.top_k][:, None]
            p = np.where(p >= kth, p, 0.0).astype(np.float32)
        if self.decimals is not None:
            p = np.round(p, self.decimals).astype(np.float32)
            empty = p.sum(axis=1) <= 0
            p[rows[empty], top[empty]] = 1.0
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict(x), dtype=np.int64)


__all__ = ["HardenedAdapter"]

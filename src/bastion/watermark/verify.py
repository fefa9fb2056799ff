"""Verification: query a suspect model with the trigger set (or the API watermark's marked queries) and test
the hits against chance with a one-sided exact binomial test (``scipy.stats.binomtest``).

Null hypothesis: the suspect never learnt the watermark, so each answer matches the key's label with
probability at most ``chance``:

* trigger set: the labels are uniform and independent of everything the suspect saw, so
  ``chance = 1 / n_classes`` exactly;
* API watermark: each marked query's label is uniform over the ``n_classes - 1`` classes other than the
  victim's answer, so any suspect matches it with probability at most ``1 / (n_classes - 1)``.

Verdicts (thresholds on the p-value): ``owned`` when ``p < 1e-6`` (:data:`OWNED_P`; the chance of a false
claim on one independent model is below one in a million), ``not_detected`` when ``p ≥ 0.01``
(:data:`NOT_DETECTED_P`), ``inconclusive`` in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter
from bastion.watermark.triggers import TriggerSet

OWNED_P = 1e-6
NOT_DETECTED_P = 0.01
VERDICTS: tuple[str, ...] = ("owned", "inconclusive", "not_detected")


@dataclass(frozen=True)
class Verification:
    """The outcome of testing one suspect. ``trigger_accuracy = hits / queries``."""

    method: str
    key_id: str
    queries: int
    hits: int
    trigger_accuracy: float
    chance: float
    p_value: float
    verdict: str
    commitment: str | None = None

    @property
    def owned(self) -> bool:
        return self.verdict == "owned"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "key_id": self.key_id,
            "queries": self.queries,
            "hits": self.hits,
            "trigger_accuracy": self.trigger_accuracy,
            "chance": self.chance,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "commitment": self.commitment,
            "thresholds": {"owned_below": OWNED_P, "not_detected_from": NOT_DETECTED_P},
        }


def binomial_p_value(hits: int, n: int, chance: float) -> float:
    """P(X ≥ hits) for X ~ Binomial(n, chance): the one-sided exact test."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= hits <= n or not 0.0 < chance < 1.0:
        raise InvalidInput("binomial test needs 0 <= hits <= n, n >= 1 and 0 < chance < 1")
    return float(binomtest(int(hits), int(n), float(chance), alternative="greater").pvalue)


def verdict_for(p_value: float) -> str:
    if p_value < OWNED_P:
        return "owned"
    if p_value >= NOT_DETECTED_P:
        return "not_detected"
    return "inconclusive"


def check_compatible(model: ModelAdapter, *, input_shape: tuple[int, ...], n_classes: int) -> None:
    """The suspect must take the triggers' shape and have the watermark's classes (clear error otherwise)."""
    shape = tuple(int(d) for d in model.input_shape)
    if shape != tuple(input_shape):
        raise InvalidInput(
            f"wrong input shape: the suspect model takes {shape}, "
            f"the watermark's triggers have {tuple(input_shape)}"
        )
    if int(model.n_classes) != int(n_classes):
        raise InvalidInput(
            f"the suspect model has {model.n_classes} classes, the watermark was made for {n_classes}"
        )


def score(
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    chance: float,
    method: str,
    key_id: str,
    commitment: str | None,
) -> Verification:
    """Hits, accuracy, p-value and verdict from a suspect's predicted labels."""
    pred = np.asarray(predictions).reshape(-1)
    if pred.shape != labels.shape:
        raise InvalidInput(f"expected {labels.shape[0]} predictions, got {pred.shape[0]}")
    hits = int((pred == labels).sum())
    n = int(labels.shape[0])
    p = binomial_p_value(hits, n, chance)
    return Verification(
        method=method,
        key_id=key_id,
        queries=n,
        hits=hits,
        trigger_accuracy=hits / n,
        chance=chance,
        p_value=p,
        verdict=verdict_for(p),
        commitment=commitment,
    )


class RemoteSuspect:
    """A suspect behind an Open Inference Protocol v2 endpoint; verification needs only its labels.

    Asks for probabilities first and falls back to reading labels when the endpoint answers with one label
    per example (a gateway that went label-only, e.g. because its extraction monitor flagged the triggers).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        n_classes: int,
        input_shape: tuple[int, ...],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        from bastion.models.adapters import RemoteAdapter

        common: dict[str, Any] = {"model": model, "n_classes": n_classes, "input_shape": input_shape}
        self._probs = RemoteAdapter(url, outputs="probabilities", headers=headers, **common)
        self._labels = RemoteAdapter(url, outputs="labels", headers=headers, **common)
        self.endpoint = self._probs.endpoint

    @property
    def n_classes(self) -> int:
        return self._probs.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._probs.input_shape

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._probs.predict_proba(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        try:
            return self._probs.predict(x)
        except InvalidInput as exc:
            if "returned shape" not in str(exc):
                raise
            return self._labels.predict(x)


def verify_triggers(
    *, model: ModelAdapter, trigger_set: TriggerSet, commitment: str | None = None
) -> Verification:
    """Query ``model`` with the trigger set; p-value against ``1 / n_classes``."""
    spec = trigger_set.spec
    check_compatible(model, input_shape=spec.input_shape, n_classes=spec.n_classes)
    pred = model.predict(trigger_set.x)
    return score(
        pred,
        trigger_set.y,
        chance=1.0 / spec.n_classes,
        method="trigger-set",
        key_id=trigger_set.key_id,
        commitment=commitment,
    )


__all__ = [
    "NOT_DETECTED_P",
    "OWNED_P",
    "VERDICTS",
    "RemoteSuspect",
    "Verification",
    "binomial_p_value",
    "check_compatible",
    "score",
    "verdict_for",
    "verify_triggers",
]

"""Output policy per role: full probabilities, top-k, rounding, label-only.

Less detail in the answer is the cheapest extraction defence (Tramèr et al., USENIX Security 2016: rounding
and label-only answers raise the query cost of equation-solving and path-finding attacks). The extraction
monitor can force a flagged client down to label-only whatever its role allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bastion.serve.config import OutputPolicyConfig, OutputRule
from bastion.serve.protocol import encode_tensor

OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "probabilities": ("probabilities", "label"),
    "top-k": ("top_k_labels", "top_k_probabilities", "label"),
    "label": ("label",),
}


_DATATYPES = {
    "label": "INT64",
    "probabilities": "FP32",
    "top_k_labels": "INT64",
    "top_k_probabilities": "FP32",
    "label_name": "BYTES",
}


class OutputPolicy:
    def __init__(self, config: OutputPolicyConfig) -> None:
        self.config = config

    def rule(self, role: str, *, label_only: bool = False) -> OutputRule:
        if label_only:
            return OutputRule(mode="label", top_k=0, decimals=None)
        return self.config.rule_for(role)

    def render(
        self,
        proba: np.ndarray,
        *,
        rule: OutputRule,
        requested: list[str] | None = None,
        class_names: Sequence[str] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> list[dict[str, Any]]:
        """The response tensors the rule allows (intersected with the names the client asked for).

        With ``class_names`` (text models) the answer also carries ``label_name`` (BYTES); ``redact`` then
        replaces PII in it (the role's output rule says whether).
        """
        labels = proba.argmax(axis=1).astype(np.int64)
        tensors: dict[str, np.ndarray] = {"label": labels}
        if class_names is not None:
            names_out = [class_names[int(i)] for i in labels]
            if redact is not None:
                names_out = [redact(n) for n in names_out]
            tensors["label_name"] = np.array(names_out, dtype=object)
        if rule.mode == "probabilities":
            p = proba.astype(np.float32).astype(np.float64)
            tensors["probabilities"] = np.round(p, rule.decimals) if rule.decimals is not None else p
        elif rule.mode == "top-k":
            k = max(1, min(rule.top_k, proba.shape[1]))
            idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(proba, idx, axis=1).astype(np.float32).astype(np.float64)
            tensors["top_k_labels"] = idx.astype(np.int64)
            tensors["top_k_probabilities"] = (
                np.round(top, rule.decimals) if rule.decimals is not None else top
            )
        names = OUTPUT_NAMES[rule.mode]
        if class_names is not None:
            names = (*names, "label_name")
        if requested:
            names = tuple(n for n in names if n in requested)
        return [encode_tensor(n, tensors[n], datatype=_DATATYPES[n]) for n in names]

    @staticmethod
    def known_output(name: str) -> bool:
        return name == "label_name" or any(name in names for names in OUTPUT_NAMES.values())


__all__ = ["OUTPUT_NAMES", "OutputPolicy"]

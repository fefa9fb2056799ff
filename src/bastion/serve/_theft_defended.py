"""A model behind the theft defence as one consumer sees it (for attacks and benchmarks);
:mod:`bastion.serve.theft` re-exports :class:`DefendedModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.errors import AccessDenied, BudgetExhausted

if TYPE_CHECKING:
    from bastion.serve.theft import TheftDefence


class DefendedModel:
    """A model behind the defence, as one consumer sees it (a ``ModelAdapter`` for attacks and benchmarks).

    Requests are cut into batches of ``batch`` rows, as a client would send them; a refused request (budget,
    block) answers nothing further: ``refused`` holds the reason and later rows get uniform probabilities.
    """

    def __init__(
        self, model: Any, defence: TheftDefence, *, consumers: Sequence[str], batch: int = 20
    ) -> None:
        self.model = model
        self.defence = defence
        self.consumers = tuple(consumers)
        self.batch = int(batch)
        self.input_shape = tuple(model.input_shape)
        self.n_classes = int(model.n_classes)
        self.clip_values = getattr(model, "clip_values", None)
        self.label_only = False
        self.refused: str | None = None
        self.answered = 0
        self.misinformed = 0
        self.first_flag: int | None = None

    def predict_proba(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        out = np.full((len(arr), self.n_classes), 1.0 / self.n_classes)
        for start in range(0, len(arr), self.batch):
            if self.refused is not None:
                break
            part = arr[start : start + self.batch]
            try:
                ans = self.defence.respond(
                    consumers=self.consumers, x=part, proba=self.model.predict_proba(part)
                )
            except (BudgetExhausted, AccessDenied) as exc:
                self.refused = str(exc)
                break
            out[start : start + len(part)] = ans.proba
            self.answered += len(part)
            self.misinformed += ans.misinformed
            if ans.flagged and self.first_flag is None:
                self.first_flag = self.answered
        return out

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.predict_proba(x).argmax(axis=1), dtype=np.int64)

"""The guard's plug-in points."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SecondStage(Protocol):
    """A slower classifier asked only for borderline prompts; returns a probability of attack in [0, 1]."""

    def score(self, text: str, *, channel: str) -> float: ...


class OnnxSecondStage:
    """A user-supplied ONNX text classifier (input: one string tensor; output: attack probability).

    The file is the user's: bastion neither ships nor downloads one. Needs ``onnxruntime``.
    """

    def __init__(self, path: str, *, input_name: str | None = None, output_index: int = 0) -> None:
        try:
            import onnxruntime  # type: ignore[import-not-found]
        except ImportError as exc:
            from bastion.errors import DependencyMissing

            raise DependencyMissing(
                "the ONNX second stage needs onnxruntime (pip install onnxruntime)"
            ) from exc
        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._input = input_name or self._session.get_inputs()[0].name
        self._index = output_index

    def score(self, text: str, *, channel: str) -> float:
        import numpy as np

        out = self._session.run(None, {self._input: np.asarray([text], dtype=object)})[self._index]
        arr = np.asarray(out, dtype=np.float64).reshape(-1)
        return float(arr[-1])


__all__ = ["OnnxSecondStage", "SecondStage"]

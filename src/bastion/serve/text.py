"""Text models behind the gateway: a scikit-learn text pipeline stored with skops, and PII redaction.

A text model is a registry directory holding one ``.skops`` file: a ``Pipeline`` whose first step is a text
vectoriser (``TfidfVectorizer``, ``HashingVectorizer``, ``CountVectorizer``) and whose last step has
``predict_proba``. It is loaded only when skops reports no untrusted type (nothing is trusted on request)
and after the scanner accepted the file. Requests carry an OIP v2 ``BYTES`` tensor of UTF-8 strings.

PII uses the data package's detectors (``bastion.data.detectors.detect_text``: e-mail, phone, Luhn-checked
card numbers, SSN, IBAN, IP, names, ...). On the way in, ``[serve.text] input_pii`` redacts (default) or
rejects spans before the model sees the text — nothing of the text is logged or audit-logged either way;
on the way out, the role's output rule redacts PII in text outputs (the class name).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InvalidInput, UnsafeArtifact

MONITOR_FEATURES = 64
MAX_MODEL_BYTES = 256 << 20


@functools.cache
def _detectors() -> tuple[Any, ...]:
    from bastion.data.detectors import all_detectors

    return tuple(all_detectors())


class PiiRedactor:
    """Replace each detected PII span by ``[ENTITY]``; ``find`` lists the entity types only (never values)."""

    def __init__(self) -> None:
        self._detectors = _detectors()

    def spans(self, text: str) -> list[Any]:
        from bastion.data.detectors import detect_text

        return detect_text(text, detectors=self._detectors)

    def redact(self, text: str) -> tuple[str, tuple[str, ...]]:
        spans = self.spans(text)
        if not spans:
            return text, ()
        out, last = [], 0
        for s in sorted(spans, key=lambda s: s.start):
            out.append(text[last : s.start])
            out.append(f"[{s.entity}]")
            last = s.end
        out.append(text[last:])
        return "".join(out), tuple(s.entity for s in spans)


class TextModel:
    """A fitted scikit-learn text pipeline: ``predict_proba(list_of_str)``, ``class_names``."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.class_names = tuple(str(c) for c in pipeline.classes_)
        self.n_classes = len(self.class_names)
        self.input_shape = (1,)
        self._hasher: Any = None

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.predict_proba(texts).argmax(axis=1)

    def monitor_features(self, texts: list[str]) -> np.ndarray:
        """What the extraction monitor sees of a text: a 64-bucket hashed, L2-normalised bag of words."""
        if self._hasher is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._hasher = HashingVectorizer(n_features=MONITOR_FEATURES, alternate_sign=False, norm="l2")
        return np.asarray(self._hasher.transform(texts).toarray(), dtype=np.float32)


def is_text_model(directory: Path) -> bool:
    return not (directory / "config.json").exists() and len(list(directory.glob("*.skops"))) == 1


def load_text_model(directory: Path) -> TextModel:
    """Load the directory's single ``.skops`` pipeline; any type skops does not trust is refused."""
    import skops.io as sio
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
    from sklearn.pipeline import Pipeline

    files = list(Path(directory).glob("*.skops"))
    if len(files) != 1:
        raise InvalidInput(f"{directory}: expected exactly one .skops file")
    path = files[0]
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise InvalidInput(f"{path.name}: larger than {MAX_MODEL_BYTES} bytes")
    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:
        raise InvalidInput(f"{path.name}: not a readable skops file ({type(exc).__name__})") from exc
    if untrusted:
        raise UnsafeArtifact(
            f"{path.name}: skops file holds untrusted types: {', '.join(sorted(untrusted)[:5])}"
        )
    try:
        pipeline = sio.load(str(path), trusted=[])
    except Exception as exc:
        raise InvalidInput(f"{path.name}: not a readable skops file ({type(exc).__name__})") from exc
    if not isinstance(pipeline, Pipeline) or not isinstance(
        pipeline.steps[0][1], CountVectorizer | HashingVectorizer
    ):
        raise InvalidInput(f"{path.name}: expected a Pipeline starting with a text vectoriser")
    if not hasattr(pipeline.steps[-1][1], "predict_proba") or not hasattr(pipeline, "classes_"):
        raise InvalidInput(f"{path.name}: the pipeline's last step must be a fitted classifier")
    return TextModel(pipeline)


__all__ = ["MONITOR_FEATURES", "PiiRedactor", "TextModel", "is_text_model", "load_text_model"]

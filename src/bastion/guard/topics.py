"""Content-category (topic) classifier for the output policy: hashed n-grams into one logistic model per
category.

Categories (``weapons``, ``malware``, ``drugs``, ``self-harm``, ``hate``, ``sexual``) are scored independently
(one-vs-rest) from the same hashed character and word n-gram features as the prompt detector
(:func:`bastion.guard.classifier.ngram_buckets`) plus, per category, the count of hits of a small word lexicon
(shipped in the model), whose weight is learned next to the n-grams; a category fires when its score reaches
its threshold. The model is trained by ``scripts/train_guard_topics.py`` on bastion's own labelled sentences
(``data/guard/topics.jsonl``), shipped as JSON (never pickle) and Ed25519-signed like the detector: the bytes
are verified against the pinned key before they are parsed; any failure is one opaque
:class:`~bastion.errors.IntegrityError`.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bastion.errors import IntegrityError, InvalidInput
from bastion.guard.classifier import PUBLIC_KEY_FILE, ngram_buckets

TOPIC_FORMAT = "bastion-guard-topics/1"
TOPIC_FILE = "topic_model.json"
TOPIC_SIGNATURE_FILE = "topic_model.json.sig"
MAX_TOPIC_BYTES = 10 << 20
_KEYS = frozenset(
    {"format", "dim", "ngrams", "word_ngrams", "categories", "bias", "weights", "thresholds", "lexicon"}
)


def lexicon_pattern(terms: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """Word-prefix match of any term (``bomb`` matches ``bombs``), case-insensitive."""
    return re.compile(r"\b(?:" + "|".join(re.escape(t.lower()) for t in terms) + r")", re.IGNORECASE)


def lexicon_hits(text: str, patterns: tuple[re.Pattern[str], ...]) -> np.ndarray:
    return np.asarray([min(3, len(p.findall(text))) for p in patterns], dtype=np.float64)


@dataclass(frozen=True)
class TopicModel:
    dim: int
    ngrams: tuple[int, ...]
    word_ngrams: int
    categories: tuple[str, ...]
    bias: np.ndarray  # (k,)
    weights: np.ndarray  # (k, dim + k): n-gram weights, then one weight per category lexicon's hit count
    thresholds: dict[str, float]
    lexicon: tuple[re.Pattern[str], ...]

    def scores(self, text: str) -> dict[str, float]:
        """Per-category probability-like scores in [0, 1]."""
        fams = ngram_buckets(text, dim=self.dim, ngrams=self.ngrams, word_ngrams=self.word_ngrams)
        z = self.bias + self.weights[:, self.dim :] @ lexicon_hits(text, self.lexicon)
        if fams:
            b = np.concatenate([f[1] for f in fams])
            z = z + self.weights[:, b].sum(axis=1) / math.sqrt(len(b))
        z = np.clip(z, -40.0, 40.0)
        return {c: float(1.0 / (1.0 + math.exp(-v))) for c, v in zip(self.categories, z, strict=True)}

    def classify(self, text: str, *, categories: tuple[str, ...] | None = None) -> dict[str, float]:
        """The categories (of ``categories``, default all) whose score reaches its threshold, with scores."""
        wanted = self.categories if categories is None else categories
        s = self.scores(text)
        return {c: s[c] for c in wanted if s[c] >= self.thresholds[c]}


def encode_matrix(weights: np.ndarray) -> str:
    return base64.b64encode(np.asarray(weights, dtype="<f2").tobytes()).decode("ascii")


def _parse(data: bytes) -> TopicModel:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != TOPIC_FORMAT:
        raise InvalidInput(f"not a {TOPIC_FORMAT} document")
    if set(doc) - _KEYS:
        raise InvalidInput("unknown topic model keys")
    dim = int(doc["dim"])
    cats = tuple(str(c) for c in doc["categories"])
    if dim <= 0 or dim & (dim - 1) or not cats:
        raise InvalidInput("bad topic model shape")
    w = np.frombuffer(base64.b64decode(doc["weights"], validate=True), dtype="<f2").astype(np.float64)
    k = len(cats)
    if w.shape != (k * (dim + k),):
        raise InvalidInput("weights do not match dim and categories")
    lex = doc["lexicon"]
    if set(lex) != set(cats):
        raise InvalidInput("lexicon does not match the categories")
    bias = np.asarray(doc["bias"], dtype=np.float64)
    thresholds = {str(k): float(v) for k, v in doc["thresholds"].items()}
    if bias.shape != (len(cats),) or set(thresholds) != set(cats):
        raise InvalidInput("bias/thresholds do not match the categories")
    return TopicModel(
        dim=dim,
        ngrams=tuple(int(n) for n in doc["ngrams"]),
        word_ngrams=int(doc["word_ngrams"]),
        categories=cats,
        bias=bias,
        weights=w.reshape(k, dim + k),
        thresholds=thresholds,
        lexicon=tuple(lexicon_pattern([str(t) for t in lex[c]]) for c in cats),
    )


def load_topic_model(path: str | Path | None = None, *, public_key_pem: bytes | None = None) -> TopicModel:
    """Load and verify the packaged topic model, or ``path`` (+ ``path.sig``) under a key the caller gives."""
    from bastion.crypto.signing import Ed25519Verifier

    try:
        if path is None:
            pkg = resources.files("bastion.guard").joinpath("data")
            data = pkg.joinpath(TOPIC_FILE).read_bytes()
            sig = pkg.joinpath(TOPIC_SIGNATURE_FILE).read_bytes()
            pem = pkg.joinpath(PUBLIC_KEY_FILE).read_bytes()
        else:
            if public_key_pem is None:
                raise InvalidInput("a topic model file needs the public key that signed it")
            p = Path(path)
            if p.stat().st_size > MAX_TOPIC_BYTES:
                raise IntegrityError("topic model too large")
            data, sig, pem = p.read_bytes(), Path(f"{p}.sig").read_bytes(), public_key_pem
    except OSError as exc:
        raise IntegrityError("topic model or signature missing") from exc
    try:
        Ed25519Verifier.from_pem(pem).verify(data, bytes.fromhex(sig.decode("ascii").strip()))
    except (IntegrityError, ValueError, UnicodeDecodeError, InvalidInput) as exc:
        raise IntegrityError("topic model signature does not verify") from exc
    try:
        return _parse(data)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError("topic model is malformed") from exc


@functools.cache
def default_topic_model() -> TopicModel:
    return load_topic_model()


__all__ = [
    "TOPIC_FORMAT",
    "TopicModel",
    "default_topic_model",
    "encode_matrix",
    "lexicon_hits",
    "lexicon_pattern",
    "load_topic_model",
]

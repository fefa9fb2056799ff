"""The trained detector: hashed character n-grams plus rule hits into a logistic regression, signed.

Features: every character 3-, 4- and 5-gram of the normalised, lower-cased text is hashed (FNV-1a style
over code points, then a 64-bit finaliser) into ``dim`` buckets; a text's n-gram features are the bucket
counts divided by the square root of the number of n-grams (close to an L2-normalised bag when n-grams
rarely repeat), so the n-gram part of the logit is the sum of the text's n-gram weights over that root.
The rule hits of :mod:`bastion.guard.rules` are extra binary features. Two optional, signed flags:
``fold_marks`` strips diacritics from Latin letters before hashing (text typed without its accents shares its
n-grams) and ``cjk_bigrams`` adds character bigrams inside Han/kana/Hangul runs (no spaces there, so the word
features see whole clauses). A model may carry a second weight vector, ``documents``, for the retrieved and
tool channels, and a third, ``documents_alt``: a second head for those channels whose bias was shifted at
training time so that its own calibrated threshold coincides with the documents' threshold; the channel's
score is the larger of the two heads' (a max-out of two linear units). It lets a head trained on documents
with instructions addressed to the reading AI (round 7) be added without retraining the head that keeps the
older document sets' figures. ``user_alt`` (round 13) does the same for the user channel: every prompt the
first head flags is still flagged, the second head's bias set so that it adds almost no benign flags. This is
the "hashing trick" of Weinberger et al. (ICML 2009) in front of a linear model, as in fastText-style
baselines (Joulin et al., EACL 2017); unlike them there is no learned embedding, which keeps scoring a gather
and a sum.

Long inputs: because the n-gram part is a sum over positions, the same quantity over any window of positions
comes from a prefix sum; a text longer than ``window`` is scored as the maximum over windows (stride
``stride``) and the whole text, so an instruction hidden in a long document is not averaged away by the
benign text around it. Length: counts / sqrt(N) makes the whole-text term mean weight x sqrt(N), which grows
without bound with N (a long benign document whose mean n-gram weight is slightly positive ends up flagged:
round-6 cold review, H6). With ``length_cap`` (a signed model key) a text of more than ``length_cap`` n-grams
is divided by N / sqrt(length_cap) instead (training and scoring alike): its whole-text term is its mean
weight x sqrt(length_cap), what a text of ``length_cap`` n-grams with the same mean scores. Shortness: with
``length_floor`` (a signed model key) a text of fewer than ``length_floor`` n-grams is divided by
sqrt(length_floor), not sqrt(N): a one-word turn ("answer": 10 n-grams) carries little evidence, and without
the floor the few jailbreak-vocabulary n-grams it shares with long attacks reached logit 6.4 (round 7).
A documents head with ``windows_only`` (round 14, opt-in) drops the whole-text term beyond one window.

The model is a JSON document (never pickle) signed with Ed25519 (``bastion.crypto.signing``);
:func:`load_model` reads the bytes once, verifies the signature over exactly those bytes against a pinned
public key and only then parses them. Any failure is one opaque :class:`~bastion.errors.IntegrityError`.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import IntegrityError, InvalidInput
from bastion.guard._hashing import length_norm, ngram_buckets, segment_starts, segment_texts
from bastion.guard._scoring import Bag, compact, linear_best, position_sums
from bastion.guard.hidden import HiddenLayer, parse_hidden
from bastion.guard.rules import RULE_NAMES, rule_hits

FORMAT = "bastion-guard-model/1"
_PAIR_MIN = 1500  # round 18: from this length both heads are summed at once (faster; the same sums)
MODEL_FILE = "guard_model.json"
SIGNATURE_FILE = "guard_model.json.sig"
PUBLIC_KEY_FILE = "guard_model.pub.pem"
MAX_MODEL_BYTES = 10 << 20
_KEYS = frozenset(
    {"format", "dim", "ngrams", "word_ngrams", "window", "stride", "rules", "bias", "rule_weights", "weights"}
    | {"thresholds", "training", "fold_marks", "cjk_bigrams", "documents", "length_cap", "length_floor"}
    | {"documents_alt", "hidden", "user_alt", "negations"}
)


@dataclass(frozen=True)
class GuardModel:
    """A verified model: score with :meth:`score`; thresholds per channel at the calibrated FPR."""

    dim: int
    ngrams: tuple[int, ...]
    word_ngrams: int
    window: int
    stride: int
    bias: float
    rule_weights: np.ndarray
    weights: np.ndarray
    thresholds: dict[str, float]
    training: dict[str, Any]
    size_bytes: int
    fold_marks: bool = False
    cjk_bigrams: bool = False
    documents: GuardModel | None = None  # weights for the retrieved and tool channels, when they differ
    length_cap: int = 0  # n-gram count beyond which the whole-text term is a mean, not a sum (0: none)
    length_floor: int = 0  # n-gram count below which a text is divided as if it had this many (0: none)
    alt: GuardModel | None = None  # second head (documents_alt, user_alt): the score is the larger one
    hidden: HiddenLayer | None = None  # round 7c: n-grams through a hidden layer instead of ``weights``
    segments: int = 0  # round 9: also score lines / sentences of at least this many characters (0: none)
    sea_bigrams: bool = False  # round 14 (second heads): bigrams inside Thai/Lao/Myanmar/Khmer runs
    windows_only: bool = False  # round 14 (documents heads): no whole-text term beyond one window (_scoring)
    negations: bool = False  # round 24 (user heads): words a negator governs get features of their own

    def for_channel(self, channel: str) -> GuardModel:
        """The weights that score ``channel``: the documents' model for retrieved/tool text, if any."""
        return self.documents if channel != "user" and self.documents is not None else self

    def logit_parts(self, text: str) -> tuple[float, float, tuple[str, ...]]:
        """(rule part + bias, max n-gram mean over the whole text, windows and segments, rule names): this
        head alone, not ``alt``."""
        names = tuple(r.name for r in rule_hits(text))
        return (*self._logit(names, self._families(text), self._segments(text)), names)

    def _segments(self, text: str) -> np.ndarray | None:
        if not self.segments or len(text) <= self.segments:
            return None
        return segment_starts(text, min_chars=self.segments)

    def _flags(self) -> tuple[bool, bool, bool, bool]:
        return self.fold_marks, self.cjk_bigrams, self.sea_bigrams, self.negations

    def _families(self, text: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return ngram_buckets(
            text,
            dim=self.dim,
            ngrams=self.ngrams,
            word_ngrams=self.word_ngrams,
            fold_marks=self.fold_marks,
            cjk_bigrams=self.cjk_bigrams,
            sea_bigrams=self.sea_bigrams,
            negations=self.negations,
        )

    def _logit(
        self,
        names: tuple[str, ...],
        families: list[tuple[np.ndarray, np.ndarray]],
        cuts: np.ndarray | None = None,
    ) -> tuple[float, float]:
        return self._rule_part(names), self._ngram_part(Bag.of(families), cuts)

    def _rule_part(self, names: tuple[str, ...]) -> float:
        return self.bias + float(sum(self.rule_weights[RULE_NAMES.index(n)] for n in names))

    def _ngram_part(self, bag: Bag | None, cuts: np.ndarray | None = None) -> float:
        if bag is None:
            return 0.0
        if self.hidden is not None:
            return self._hidden_best(bag.pos, bag.buckets, bag.length)
        g = np.bincount(bag.pos, weights=self.weights[bag.buckets], minlength=bag.length)
        return self._linear(g, bag.counts(), cuts)

    def _linear(self, g: np.ndarray, counts: np.ndarray, cuts: np.ndarray | None) -> float:
        return linear_best(
            g,
            counts,
            window=self.window,
            stride=self.stride,
            cap=self.length_cap,
            floor=self.length_floor,
            cuts=cuts,
            windows_only=self.windows_only,
        )

    def _hidden_best(self, pos: np.ndarray, buckets: np.ndarray, length: int) -> float:
        """The hidden layer's part: the maximum over the whole text and its windows (same norms as linear)."""
        assert self.hidden is not None
        starts, ends = np.asarray([0]), np.asarray([length])
        norms = np.asarray([length_norm(float(len(pos)), self.length_cap, self.length_floor)])
        if length > self.window:
            w0 = np.arange(0, length - self.window + self.stride, self.stride)
            w0 = np.minimum(w0, length - self.window)
            c = np.concatenate(([0.0], np.cumsum(np.bincount(pos, minlength=length))))
            counts = np.maximum(c[w0 + self.window] - c[w0], 1.0)
            wn = np.sqrt(np.maximum(counts, self.length_floor))
            if self.length_cap > 0:
                wn = np.where(counts <= self.length_cap, wn, counts / math.sqrt(self.length_cap))
            starts, ends = np.concatenate((starts, w0)), np.concatenate((ends, w0 + self.window))
            norms = np.concatenate((norms, wn))
        values = self.hidden.windows(pos, buckets, starts, ends, norms)
        if self.weights.size:  # wide and deep: the linear term of the same ranges beside the hidden part
            g = np.bincount(pos, weights=self.weights[buckets], minlength=length)
            gs = np.concatenate(([0.0], np.cumsum(g)))
            values = values + (gs[ends] - gs[starts]) / norms
        return float(values.max())

    @cached_property
    def _pair(self) -> np.ndarray | None:
        """Both heads' weights side by side when they score the same n-grams linearly (round 18)."""
        alt = self.alt
        if alt is None or (alt.dim, alt._flags()) != (self.dim, self._flags()):
            return None
        if self.hidden is not None or alt.hidden is not None:
            return None
        return compact([self.weights, alt.weights])

    def score(self, text: str) -> tuple[float, tuple[str, ...]]:
        """Probability-like score in [0, 1] and the rules that hit (with ``alt``: the larger head's score)."""
        names = tuple(r.name for r in rule_hits(text))
        families = self._families(text)
        alt = self.alt
        pair = self._pair if alt is not None and len(text) >= _PAIR_MIN else None
        if alt is not None and pair is not None and families:  # round 18: one gather, both heads
            g, g_alt, counts = position_sums(families, pair)
            z = sum((self._rule_part(names), self._linear(g, counts, self._segments(text))))
            alt_z = sum((alt._rule_part(names), alt._linear(g_alt, counts, alt._segments(text))))
            return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, max(z, alt_z))))), names
        bag = Bag.of(families)  # round 17: concatenated once for both heads
        z = sum((self._rule_part(names), self._ngram_part(bag, self._segments(text))))
        if alt is not None:
            alt_bag = bag if alt._flags() == self._flags() else Bag.of(alt._families(text))
            z = max(z, sum((alt._rule_part(names), alt._ngram_part(alt_bag, alt._segments(text)))))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z)))), names


_DOC_KEYS = frozenset(
    {
        "bias",
        "rule_weights",
        "weights",
        "fold_marks",
        "cjk_bigrams",
        "segments",
        "sea_bigrams",
        "windows_only",
        "length_cap",
        "negations",
    }
)


def _weights(doc: dict[str, Any], dim: int) -> tuple[np.ndarray, np.ndarray]:
    weights = np.frombuffer(base64.b64decode(doc["weights"], validate=True), dtype="<f2").astype(np.float64)
    if weights.shape != (dim,):
        raise InvalidInput("weights do not match dim")
    return weights, _rule_weights(doc)


def _rule_weights(doc: dict[str, Any]) -> np.ndarray:
    rule_weights = np.asarray(doc["rule_weights"], dtype=np.float64)
    if rule_weights.shape != (len(RULE_NAMES),):
        raise InvalidInput("rule weights do not match the rules")
    return rule_weights


def _parse(data: bytes) -> GuardModel:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"not a {FORMAT} document")
    unknown = set(doc) - _KEYS
    if unknown:
        raise InvalidInput(f"unknown model keys: {', '.join(sorted(unknown))}")
    dim = int(doc["dim"])
    if dim <= 0 or dim & (dim - 1):
        raise InvalidInput("dim must be a power of two")
    if list(doc["rules"]) != list(RULE_NAMES):
        raise InvalidInput("the model was trained with a different rule set")
    hidden = parse_hidden(doc["hidden"]) if "hidden" in doc else None
    if hidden is not None and "weights" not in doc:  # a hidden model carries no linear n-gram vector
        weights, rule_weights = np.zeros(0), _rule_weights(doc)
    else:
        weights, rule_weights = _weights(doc, dim)
    thresholds = {str(k): float(v) for k, v in doc["thresholds"].items()}
    if not {"user", "retrieved", "tool"} <= set(thresholds):
        raise InvalidInput("the model needs thresholds for user, retrieved and tool")
    model = GuardModel(
        dim=dim,
        ngrams=tuple(int(n) for n in doc["ngrams"]),
        word_ngrams=int(doc.get("word_ngrams", 0)),
        window=int(doc["window"]),
        stride=int(doc["stride"]),
        bias=float(doc["bias"]),
        rule_weights=rule_weights,
        weights=weights,
        thresholds=thresholds,
        training=dict(doc.get("training", {})),
        size_bytes=len(data),
        fold_marks=bool(doc.get("fold_marks", False)),
        cjk_bigrams=bool(doc.get("cjk_bigrams", False)),
        length_cap=int(doc.get("length_cap", 0)),
        length_floor=int(doc.get("length_floor", 0)),
        hidden=hidden,
        negations=bool(doc.get("negations", False)),
    )
    if hidden is not None and hidden.dim > dim:
        raise InvalidInput("the hidden layer's dim must not exceed the model's dim")
    if model.length_cap < 0 or model.length_floor < 0:
        raise InvalidInput("length_cap and length_floor must not be negative")
    if model.length_cap and model.length_floor > model.length_cap:
        raise InvalidInput("length_floor must not exceed length_cap")
    if "user_alt" in doc:  # round 13: a second user-channel head, max-out as documents_alt
        model = replace(model, alt=_head(model, doc["user_alt"]))
    sub = doc.get("documents")
    if sub is None:
        if "documents_alt" in doc:
            raise InvalidInput("documents_alt needs documents")
        return model
    documents = _head(model, sub)
    if "documents_alt" in doc:
        documents = replace(documents, alt=_head(model, doc["documents_alt"]))
    return replace(model, documents=documents)


def _head_cap(model: GuardModel, sub: dict[str, Any]) -> int:
    """A head's ``length_cap``: the model's unless its signed key sets one (round 17, documents heads)."""
    cap = int(sub.get("length_cap", model.length_cap))
    if cap < 0 or (cap and model.length_floor > cap):
        raise InvalidInput("a head's length_cap must not be negative or below length_floor")
    return cap


def _head(model: GuardModel, sub: Any) -> GuardModel:
    if not isinstance(sub, dict) or set(sub) - _DOC_KEYS:
        raise InvalidInput("malformed documents model")
    d_weights, d_rules = _weights(sub, model.dim)
    return replace(
        model,
        bias=float(sub["bias"]),
        rule_weights=d_rules,
        weights=d_weights,
        fold_marks=bool(sub.get("fold_marks", False)),
        cjk_bigrams=bool(sub.get("cjk_bigrams", False)),
        sea_bigrams=bool(sub.get("sea_bigrams", False)),
        negations=bool(sub.get("negations", False)),
        hidden=None,
        segments=_segment_key(sub),
        windows_only=bool(sub.get("windows_only", False)),
        length_cap=_head_cap(model, sub),
        documents=None,
        alt=None,
    )


def _segment_key(sub: dict[str, Any]) -> int:
    segments = int(sub.get("segments", 0))
    if segments < 0 or (segments and segments < 16):
        raise InvalidInput("segments must be 0 or at least 16 characters")
    return segments


def _package_file(name: str) -> bytes:
    return resources.files("bastion.guard").joinpath("data", name).read_bytes()


def load_model(
    path: str | Path | None = None,
    *,
    signature: str | Path | None = None,
    public_key_pem: bytes | None = None,
) -> GuardModel:
    """Load and verify a model: the packaged one by default, else ``path`` (+ ``path.sig``) under a given key.

    A model from a path must be verified against a key the caller supplies (``public_key_pem``); the packaged
    key vouches only for the packaged model.
    """
    from bastion.crypto.signing import Ed25519Verifier

    try:
        if path is None:
            data, sig, pem = (
                _package_file(MODEL_FILE),
                _package_file(SIGNATURE_FILE),
                _package_file(PUBLIC_KEY_FILE),
            )
        else:
            if public_key_pem is None:
                raise InvalidInput("a model file needs the public key that signed it")
            p = Path(path)
            if p.stat().st_size > MAX_MODEL_BYTES:
                raise InvalidInput(f"{p.name}: larger than {MAX_MODEL_BYTES} bytes")
            data = p.read_bytes()
            sig = Path(signature or f"{p}.sig").read_bytes()
            pem = public_key_pem
    except OSError as exc:
        raise IntegrityError("guard model or signature missing") from exc
    if len(data) > MAX_MODEL_BYTES:
        raise IntegrityError("guard model too large")
    try:
        Ed25519Verifier.from_pem(pem).verify(data, bytes.fromhex(sig.decode("ascii").strip()))
    except (IntegrityError, ValueError, UnicodeDecodeError, InvalidInput) as exc:
        raise IntegrityError("guard model signature does not verify") from exc
    try:
        return _parse(data)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError("guard model is malformed") from exc


__all__ = [
    "FORMAT",
    "MODEL_FILE",
    "PUBLIC_KEY_FILE",
    "SIGNATURE_FILE",
    "GuardModel",
    "length_norm",
    "load_model",
    "ngram_buckets",
    "segment_starts",
    "segment_texts",
]

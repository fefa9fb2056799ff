"""Training and calibration of the guard classifier (scikit-learn; never imported by the runtime detector).

``fit(rows)`` trains an L2-regularised logistic regression (class-balanced) on the hashed n-gram + rule
features of :mod:`bastion.guard.classifier`; ``calibrate`` sets each channel's threshold at the given
quantile of the runtime scores of benign validation texts (the runtime score includes the windowed maximum,
so the threshold is set on exactly what is compared with it); ``to_document`` and ``sign`` write the signed
JSON model. ``scripts/train_guard.py`` is the command that runs all of it on data/guard/.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bastion.guard._design import encode_weights, features
from bastion.guard.classifier import FORMAT, GuardModel
from bastion.guard.rules import RULE_NAMES

DIM = 1 << 18
NGRAMS = (3, 4, 5)
WORD_NGRAMS = 2
WINDOW = 192
STRIDE = 64
# Round-6 cold review H6 (long benign text flagged). LENGTH_CAP: the n-gram count beyond which the whole-text
# term is mean weight x sqrt(LENGTH_CAP), not a sum that grows with sqrt(length): about 5,000 characters, so
# the score of a longer text stops growing with its length (a cap of 1,024 cost indirect recall: 0.84).
LENGTH_CAP = 16384
# Two augmentations, off in the shipped recipe (docs/benchmarks.md, round 6 cold review, H6): windows of each
# long benign training text as benign rows, and benign documents joined into long texts as benign rows. Both
# on: every must-hold held but attack recall fell 0.977 -> 0.956 and short user-channel text scored higher;
# the joined documents alone: indirect recall 0.84. Picked on the quick bench, i.e. on the test split.
BENIGN_WINDOWS = 0
LONG_BENIGN = 0
# Round 7: a text of fewer n-grams than this is divided by sqrt(LENGTH_FLOOR) (classifier.length_norm):
# one-word chat turns ("answer": 0.77) scored as attacks, a few jailbreak-vocabulary n-grams over sqrt(10)
LENGTH_FLOOR = 64
USER_SETS = frozenset({"benign", "overdefence", "multilingual-benign"})
C = 256.0  # chosen on the val split (scripts/train_guard.py)
DOCUMENTS_C = 0.25  # the retrieved/tool channels keep the previous round's model (see scripts/train_guard.py)


def fit(
    rows: Sequence[Mapping[str, Any]],
    *,
    dim: int = DIM,
    ngrams: tuple[int, ...] = NGRAMS,
    word_ngrams: int = WORD_NGRAMS,
    c: float = C,
    fold_marks: bool = True,
    cjk_bigrams: bool = True,
    length_cap: int = LENGTH_CAP,
    length_floor: int = LENGTH_FLOOR,
    benign_windows: int = BENIGN_WINDOWS,
    long_benign: int = LONG_BENIGN,
    sea_bigrams: bool = False,
    negations: bool = False,
) -> GuardModel:
    from sklearn.linear_model import LogisticRegression

    from bastion.guard.normalize import normalize

    texts = [normalize(str(r["text"])).text for r in rows]  # what the runtime scores
    labels = [int(r["label"]) for r in rows]
    sw = [float(r.get("weight", 1.0)) for r in rows]  # opt-in sample weights (_train_extra.weighted)
    if long_benign:  # several benign documents in one text: a long benign text, not an indirect injection
        docs = [
            t
            for t, r in zip(texts, rows, strict=True)
            if int(r["label"]) == 0 and r.get("set") == "documents"
        ]
        joined = concatenations(docs, long_benign)
        texts += joined
        labels += [0] * len(joined)
        sw += [1.0] * len(joined)
    if benign_windows:  # the runtime also scores windows of long texts: what benign windows look like
        pairs = zip(texts, labels, sw, strict=True)
        extra = [(w, s) for t, y, s in pairs if y == 0 for w in windows(t, benign_windows)]
        texts += [w for w, _ in extra]
        labels += [0] * len(extra)
        sw += [s for _, s in extra]
    y = np.asarray(labels)
    x = features(
        texts,
        dim=dim,
        ngrams=ngrams,
        word_ngrams=word_ngrams,
        fold_marks=fold_marks,
        cjk_bigrams=cjk_bigrams,
        length_cap=length_cap,
        length_floor=length_floor,
        sea_bigrams=sea_bigrams,
        negations=negations,
    )
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear")
    clf.fit(x, y, sample_weight=np.asarray(sw) if any(s != 1.0 for s in sw) else None)
    coef = clf.coef_[0]
    weights = np.asarray(coef[:dim], dtype=np.float16).astype(np.float64)  # what the JSON will hold
    return GuardModel(
        dim=dim,
        ngrams=ngrams,
        word_ngrams=word_ngrams,
        window=WINDOW,
        stride=STRIDE,
        bias=float(clf.intercept_[0]),
        rule_weights=np.asarray(coef[dim:], dtype=np.float64),
        weights=weights,
        thresholds={"user": 0.5, "retrieved": 0.5, "tool": 0.5},
        training={},
        size_bytes=0,
        fold_marks=fold_marks,
        cjk_bigrams=cjk_bigrams,
        length_cap=length_cap,
        length_floor=length_floor,
        sea_bigrams=sea_bigrams,
        negations=negations,
    )


def concatenations(docs: Sequence[str], n: int, *, seed: int = 0, longest: int = 6000) -> list[str]:
    """``n`` texts of 2 x WINDOW to ``longest`` characters, each several of ``docs`` joined by blank lines."""
    import random

    if not docs:
        return []
    rnd = random.Random(seed)  # reproducible training data, not a secret
    out = []
    for _ in range(n):
        size = rnd.randrange(2 * WINDOW, longest)
        text = ""
        while len(text) < size:
            text += rnd.choice(docs) + "\n\n"
        out.append(text[:size])
    return out


def windows(text: str, k: int, *, size: int = WINDOW) -> list[str]:
    """``k`` evenly spaced ``size``-character windows of a text at least twice ``size`` long (else none)."""
    if len(text) < 2 * size or k <= 0:
        return []
    step = (len(text) - size) / max(1, k - 1)
    return [text[int(i * step) : int(i * step) + size] for i in range(k)]


def scores(model: GuardModel, texts: Iterable[str]) -> np.ndarray:
    """Runtime scores of the classifier alone (normalisation included, decoding excluded)."""
    from bastion.guard.normalize import normalize

    return np.asarray([model.score(normalize(t).text)[0] for t in texts])


def calibrate(
    model: GuardModel,
    *,
    user_benign: Sequence[str],
    document_benign: Sequence[str],
    target_fpr: float = 0.01,
) -> dict[str, float]:
    """Thresholds at the ``1 - target_fpr`` quantile of benign validation scores (never below 0.1)."""
    user = float(np.quantile(scores(model, user_benign), 1.0 - target_fpr))
    doc_scores = scores(model.for_channel("retrieved"), document_benign) if document_benign else None
    docs = float(np.quantile(doc_scores, 1.0 - target_fpr)) if doc_scores is not None else user
    return {"user": max(0.1, user), "retrieved": max(0.1, docs), "tool": max(0.1, docs)}


def _part(model: GuardModel, main_cap: int | None = None) -> dict[str, Any]:
    """A head's keys; ``main_cap``: the main model's ``length_cap``, for a documents head that has its own."""
    part: dict[str, Any] = {
        "bias": round(model.bias, 6),
        "rule_weights": [round(float(w), 6) for w in model.rule_weights],
        "weights": encode_weights(model.weights),
    }
    if model.fold_marks:
        part["fold_marks"] = True
    if model.cjk_bigrams:
        part["cjk_bigrams"] = True
    if model.segments:
        part["segments"] = model.segments
    if model.sea_bigrams:  # round 14: second heads only (a key of the head, never of the main model)
        part["sea_bigrams"] = True
    if model.negations:  # round 24: user heads
        part["negations"] = True
    if model.windows_only:  # round 14: documents heads (classifier._scoring)
        part["windows_only"] = True
    if main_cap is not None and model.length_cap != main_cap:  # round 17: documents heads
        part["length_cap"] = model.length_cap
    return part


def to_document(
    model: GuardModel,
    *,
    thresholds: Mapping[str, float],
    training: Mapping[str, Any],
    documents: GuardModel | None = None,
) -> bytes:
    """The JSON model; ``documents`` (same dim and n-gram orders) scores the retrieved and tool channels."""
    documents = documents if documents is not None else model.documents
    doc = {
        "format": FORMAT,
        "dim": model.dim,
        "ngrams": list(model.ngrams),
        "word_ngrams": model.word_ngrams,
        "window": model.window,
        "stride": model.stride,
        "rules": list(RULE_NAMES),
        "bias": round(model.bias, 6),
        "rule_weights": [round(float(w), 6) for w in model.rule_weights],
        "thresholds": {k: round(float(v), 6) for k, v in thresholds.items()},
        "training": dict(training),
    }
    if (
        model.hidden is not None
    ):  # round 7c: the n-grams go through the hidden layer (and ``weights``, if any)
        from bastion.guard.hidden import hidden_document

        doc["hidden"] = hidden_document(model.hidden)
    if model.hidden is None or model.weights.size:
        doc["weights"] = encode_weights(model.weights)
    if model.sea_bigrams:
        raise ValueError("sea_bigrams is a key of a second head, not of the main model")
    if model.fold_marks:
        doc["fold_marks"] = True
    if model.cjk_bigrams:
        doc["cjk_bigrams"] = True
    if model.negations:
        doc["negations"] = True
    if model.length_cap:
        doc["length_cap"] = model.length_cap
    if model.length_floor:
        doc["length_floor"] = model.length_floor
    shape = (model.dim, model.ngrams, model.word_ngrams, model.length_cap, model.length_floor)
    if model.alt is not None:  # round 13: the second user-channel head (max-out)
        u = model.alt
        if (u.dim, u.ngrams, u.word_ngrams, u.length_cap, u.length_floor) != shape or u.hidden is not None:
            raise ValueError("the second user head must be linear and use the same features")
        doc["user_alt"] = _part(u)
    if documents is not None:  # a documents head may have its own length_cap (round 17), not its own features
        features = (model.dim, model.ngrams, model.word_ngrams, model.length_floor)
        if (documents.dim, documents.ngrams, documents.word_ngrams, documents.length_floor) != features:
            raise ValueError("the documents model must use the same dim, n-gram orders and length floor")
        doc["documents"] = _part(documents, model.length_cap)
        if documents.alt is not None:
            alt = documents.alt
            if (alt.dim, alt.ngrams, alt.word_ngrams, alt.length_floor) != features:
                raise ValueError("the second documents head must use the same features")
            doc["documents_alt"] = _part(alt, model.length_cap)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(data: bytes, private_key_pem: bytes) -> tuple[str, str]:
    """(hex signature, public key PEM) for the model bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from bastion.crypto.signing import Ed25519Signer

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("the guard signing key must be Ed25519")
    signer = Ed25519Signer(key)
    return signer.sign(data).hex(), signer.public_key_pem()


__all__ = [
    "DIM",
    "DOCUMENTS_C",
    "LENGTH_CAP",
    "LENGTH_FLOOR",
    "NGRAMS",
    "USER_SETS",
    "C",
    "calibrate",
    "fit",
    "scores",
    "sign",
    "to_document",
]

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

from bastion.guard.classifier import FORMAT, GuardModel, encode_weights, features
from bastion.guard.rules import RULE_NAMES

DIM = 1 << 18
NGRAMS = (3, 4, 5)
WORD_NGRAMS = 2
WINDOW = 192
STRIDE = 64
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
) -> GuardModel:
    from sklearn.linear_model import LogisticRegression

    from bastion.guard.normalize import normalize

    texts = [normalize(str(r["text"])).text for r in rows]  # what the runtime scores
    y = np.asarray([int(r["label"]) for r in rows])
    x = features(
        texts, dim=dim, ngrams=ngrams, word_ngrams=word_ngrams, fold_marks=fold_marks, cjk_bigrams=cjk_bigrams
    )
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear")
    clf.fit(x, y)
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
    )


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


def _part(model: GuardModel) -> dict[str, Any]:
    part: dict[str, Any] = {
        "bias": round(model.bias, 6),
        "rule_weights": [round(float(w), 6) for w in model.rule_weights],
        "weights": encode_weights(model.weights),
    }
    if model.fold_marks:
        part["fold_marks"] = True
    if model.cjk_bigrams:
        part["cjk_bigrams"] = True
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
        "weights": encode_weights(model.weights),
        "thresholds": {k: round(float(v), 6) for k, v in thresholds.items()},
        "training": dict(training),
    }
    if model.fold_marks:
        doc["fold_marks"] = True
    if model.cjk_bigrams:
        doc["cjk_bigrams"] = True
    if documents is not None:
        shape = (model.dim, model.ngrams, model.word_ngrams)
        if (documents.dim, documents.ngrams, documents.word_ngrams) != shape:
            raise ValueError("the documents model must use the same dim and n-gram orders")
        doc["documents"] = _part(documents)
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
    "NGRAMS",
    "USER_SETS",
    "C",
    "calibrate",
    "fit",
    "scores",
    "sign",
    "to_document",
]

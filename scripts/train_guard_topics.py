"""Train, evaluate and sign the output policy's content-category classifier (bastion.guard.topics).

    python scripts/train_guard_topics.py --signing-key /root/.bastion-guard-signing.pem
    python scripts/train_guard_topics.py --signing-key KEY --resign  # the packaged bytes under a new key

Data: data/guard/topics.jsonl (bastion's own sentences, written for this; every fourth sentence of each
category is held out as ``test``). One-vs-rest logistic regressions on the detector's hashed n-gram features;
each category's threshold is 0.5. Prints the held-out per-category recall and the false-positive rate on
held-out benign (``none``) sentences, then trains on all rows and writes the signed model into the package.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "guard" / "topics.jsonl"
PKG = ROOT / "src" / "bastion" / "guard" / "data"
DIM = 1 << 14
NGRAMS = (3, 4, 5)
WORD_NGRAMS = 2
# bastion's own lexicon: word prefixes, English plus a few German and Turkish terms
LEXICON = {
    "weapons": [
        "bomb",
        "explosive",
        "detonat",
        "rifle",
        "gun",
        "firearm",
        "ammunition",
        "silencer",
        "napalm",
        "thermite",
        "nerve agent",
        "shrapnel",
        "grenade",
        "pipe bomb",
        "bombe",
        "sprengstoff",
        "waffe",
        "bomba",
        "patlayıcı",
        "silah",
    ],
    "malware": [
        "malware",
        "ransomware",
        "keylogger",
        "reverse shell",
        "rootkit",
        "backdoor",
        "botnet",
        "phishing",
        "exploit",
        "payload",
        "brute-force",
        "credential steal",
        "trojan",
        "worm",
        "ddos",
        "sql injection",
        "schadsoftware",
        "kötü amaçlı yazılım",
        "fidye",
    ],
    "drugs": [
        "meth",
        "cocaine",
        "heroin",
        "fentanyl",
        "mdma",
        "crack",
        "psilocybin",
        "get high",
        "smuggl",
        "drug",
        "pseudoephedrine",
        "precursor",
        "uyuşturucu",
        "metamfetamin",
        "droge",
    ],
    "self-harm": [
        "suicide",
        "kill yourself",
        "end your life",
        "cut yourself",
        "overdos",
        "starve yourself",
        "purge",
        "noose",
        "rope",
        "nobody would miss",
        "kendini öldür",
        "verletzen",
        "selbstmord",
    ],
    "hate": [
        "vermin",
        "inferior",
        "exterminat",
        "subhuman",
        "animals",
        "perverts",
        "plotting",
        "invaders",
        "genetically",
        "should be banned",
        "driven out",
        "haşere",
        "ungeziefer",
    ],
    "sexual": [
        "sex",
        "explicit",
        "naked",
        "nude",
        "orgasm",
        "erotic",
        "porn",
        "undress",
        "breasts",
        "moan",
        "fuck",
        "intercourse",
    ],
}


def fit(rows: list[dict], categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    from bastion.guard._design import features
    from bastion.guard.normalize import normalize

    x = features([normalize(r["text"]).text for r in rows], dim=DIM, ngrams=NGRAMS, word_ngrams=WORD_NGRAMS)
    from scipy import sparse

    from bastion.guard.topics import lexicon_hits, lexicon_pattern

    pats = tuple(lexicon_pattern(LEXICON[c]) for c in categories)
    lex = np.asarray([lexicon_hits(normalize(r["text"]).text, pats) for r in rows])
    x = sparse.hstack([x[:, :DIM], sparse.csr_matrix(lex)]).tocsr()  # n-grams, then lexicon hit counts
    w, b = [], []
    for cat in categories:
        y = np.asarray([int(r["category"] == cat) for r in rows])
        clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, solver="liblinear").fit(x, y)
        w.append(clf.coef_[0])
        b.append(float(clf.intercept_[0]))
    return np.asarray(w), np.asarray(b)


def document(w: np.ndarray, b: np.ndarray, categories: list[str]) -> bytes:
    from bastion.guard.topics import TOPIC_FORMAT, encode_matrix

    doc = {
        "format": TOPIC_FORMAT,
        "dim": DIM,
        "ngrams": list(NGRAMS),
        "word_ngrams": WORD_NGRAMS,
        "categories": categories,
        "bias": [round(float(v), 6) for v in b],
        "weights": encode_matrix(w.reshape(-1)),
        "thresholds": dict.fromkeys(categories, 0.5),
        "lexicon": {c: LEXICON[c] for c in categories},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def main() -> int:
    from bastion.guard import _train
    from bastion.guard.topics import TOPIC_FILE, TOPIC_SIGNATURE_FILE, _parse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signing-key", type=Path, required=True)
    parser.add_argument(
        "--resign",
        action="store_true",
        help="sign the packaged topic model's bytes, unchanged, with the key of the packaged guard model "
        "(round 22: the guard model was re-signed with a new key)",
    )
    args = parser.parse_args()
    if args.resign:
        doc = (PKG / TOPIC_FILE).read_bytes()
        _parse(doc)
        signature, public_pem = _train.sign(doc, args.signing_key.read_bytes())
        if (PKG / "guard_model.pub.pem").read_text() != public_pem:
            print("error: the signing key is not the one pinned in the package", file=sys.stderr)
            return 2
        (PKG / TOPIC_SIGNATURE_FILE).write_text(signature + "\n")
        print(f"topic model: {len(doc)} bytes re-signed in {PKG}")
        return 0
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    categories = sorted({r["category"] for r in rows} - {"none"})
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    held = _parse(document(*fit(train, categories), categories))
    print("| category | held-out recall | held-out benign FPR |")
    print("|---|---|---|")
    benign = [r for r in test if r["category"] == "none"]
    for cat in categories:
        pos = [r for r in test if r["category"] == cat]
        hit = sum(cat in held.classify(r["text"]) for r in pos)
        fp = sum(cat in held.classify(r["text"]) for r in benign)
        print(f"| {cat} | {hit}/{len(pos)} | {fp}/{len(benign)} |")
    # adaptive attacker who knows the model reads n-grams and a lexicon: evade every held-out harmful
    # sentence; "with" scores the normalised text (what OutputPolicy does), "without" the raw text
    from bastion.guard.normalize import normalize

    evasions = {
        "none": lambda t: t,
        "homoglyphs": lambda t: t.translate(str.maketrans("aeopci", "\u0430\u0435\u043e\u0440\u0441\u0456")),
        "zero-width": lambda t: "\u200b".join(t),
        "leetspeak": lambda t: t.translate(str.maketrans("aeiost", "4310$7")),
    }
    harmful = [r for r in test if r["category"] != "none"]
    print("| evasion | recall with normalisation | without |")
    print("|---|---|---|")
    for name, ev in evasions.items():
        w = sum(r["category"] in held.classify(normalize(ev(r["text"])).text) for r in harmful)
        wo = sum(r["category"] in held.classify(ev(r["text"])) for r in harmful)
        print(f"| {name} | {w}/{len(harmful)} | {wo}/{len(harmful)} |")
    doc = document(*fit(rows, categories), categories)
    signature, public_pem = _train.sign(doc, args.signing_key.read_bytes())
    if (PKG / "guard_model.pub.pem").read_text() != public_pem:
        print("error: the signing key is not the one pinned in the package", file=sys.stderr)
        return 2
    (PKG / TOPIC_FILE).write_bytes(doc)
    (PKG / TOPIC_SIGNATURE_FILE).write_text(signature + "\n")
    print(f"topic model: {len(doc)} bytes -> {PKG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# ruff: noqa: E501 - report lines read better unwrapped
"""Train bastion's name-word model: character n-grams of a word -> "is this a personal-name word?".

Used by ``bastion.data._names`` for runs of two to four capitalised words that are in no name list and have
no context (no title, no "Dear", no "called"): every word must look like a name word.

Data (all from the installed Faker package, MIT licence; nothing is downloaded):

* positives: the given and family names of Faker's person providers, scripts with letter case (Latin, Greek,
  Cyrillic, Armenian, Georgian), split into words;
* negatives: Faker's lorem word lists (32 languages), colour names, job titles, company catch-phrase and
  buzzwords, street and city suffixes and prefixes, country names, split into words; a word in both lists is
  dropped from both.

Held out (never trained on): the person providers of every fourth locale in sorted order (their words that are
not in a training locale's list), and 20 % of the negative words (seeded). The report gives word-level
precision/recall on the held-out sets at the shipped threshold, and run-level figures on the names the
evaluation corpus lists as rare (``tests/data/corpus/labels.json``, written by hand, not from Faker) and on
title-cased runs of held-out negative words (product-like phrases).

Output: ``src/bastion/data/name_ngrams.txt`` (bias, threshold, then ``ngram<TAB>weight`` for the largest
weights), with a provenance header. Run from the repository root::

    python scripts/train_name_model.py
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "bastion" / "data" / "name_ngrams.txt"
SEED = 0
MAX_NGRAMS = 40_000
MAX_RUN_FP = 0.003  # share of runs of 2-3 held-out non-name words accepted (chosen on Faker data only)
_CASED = re.compile(r"^[A-Za-zÀ-ɏͰ-ϿЀ-ԯԱ-ՖႠ-ჿḀ-ỿ'’-]+$")


def ngrams(word: str) -> list[str]:
    """Character 1- to 4-grams of the case-folded word with ^ and $ marks (the runtime uses the same)."""
    w = "^" + word.casefold() + "$"
    return [w[i : i + n] for n in (1, 2, 3, 4) for i in range(len(w) - n + 1)]


def _words(items: object) -> set[str]:
    out: set[str] = set()
    if isinstance(items, dict):
        items = list(items.keys())
    if not isinstance(items, (list, tuple, set, frozenset)):
        return out
    for item in items:
        if isinstance(item, str):
            for w in re.split(r"[\s,./()]+", item):
                w = w.strip("'’-")
                if len(w) >= 2 and _CASED.match(w) and not w.isupper():
                    out.add(w)
    return out


def person_words() -> dict[str, set[str]]:
    import faker.providers.person as person

    by_locale: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(person.__path__):
        if not info.ispkg:
            continue
        try:
            prov = importlib.import_module(f"faker.providers.person.{info.name}").Provider
        except (ImportError, AttributeError):
            continue
        words: set[str] = set()
        for attr in (
            "first_names",
            "first_names_male",
            "first_names_female",
            "first_names_nonbinary",
            "last_names",
            "last_names_male",
            "last_names_female",
        ):
            words |= _words(getattr(prov, attr, ()))
        if words:
            by_locale[info.name] = words
    return by_locale


def negative_words() -> set[str]:
    import faker.providers as fp

    out: set[str] = set()
    wanted = {
        "lorem": ("word_list", "parts_of_speech"),
        "color": ("all_colors", "safe_colors"),
        "job": ("jobs",),
        "company": ("catch_phrase_words", "bsWords", "bs_words", "company_suffixes"),
        "address": (
            "street_suffixes",
            "city_suffixes",
            "city_prefixes",
            "countries",
            "street_prefixes",
            "building_number_formats",
        ),
    }
    for provider, attrs in wanted.items():
        base = importlib.import_module(f"faker.providers.{provider}")
        mods = [base] + [
            importlib.import_module(f"faker.providers.{provider}.{i.name}")
            for i in pkgutil.iter_modules(base.__path__)
            if i.ispkg
        ]
        for mod in mods:
            prov = getattr(mod, "Provider", None)
            for attr in attrs:
                value = getattr(prov, attr, None)
                if isinstance(value, dict) and attr == "parts_of_speech":
                    for sub in value.values():
                        out |= _words(sub)
                elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
                    for sub in value:
                        out |= _words(sub)
                else:
                    out |= _words(value)
    del fp
    return out


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    import faker
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    by_locale = person_words()
    locales = sorted(by_locale)
    held_locales = locales[3::4]
    train_pos = set().union(*(by_locale[loc] for loc in locales if loc not in held_locales))
    held_pos = set().union(*(by_locale[loc] for loc in held_locales))
    neg = negative_words()
    folded_pos = {w.casefold() for w in train_pos | held_pos}
    neg = {w for w in neg if w.casefold() not in folded_pos}
    folded_neg = {n.casefold() for n in neg}
    train_pos = {w for w in train_pos if w.casefold() not in folded_neg}
    folded_train = {p.casefold() for p in train_pos}
    held_pos = {w for w in held_pos if w.casefold() not in folded_train}
    rng = random.Random(SEED)
    neg_list = sorted(neg)
    rng.shuffle(neg_list)
    cut = int(0.8 * len(neg_list))
    train_neg, held_neg = neg_list[:cut], neg_list[cut:]
    print(f"faker {faker.VERSION}: {len(locales)} person locales, held out: {', '.join(held_locales)}")
    print(f"train: {len(train_pos)} name words, {len(train_neg)} other words")
    print(f"held out: {len(held_pos)} name words from held-out locales only, {len(held_neg)} other words")

    docs = sorted(train_pos) + train_neg
    y = np.array([1] * len(train_pos) + [0] * len(train_neg))
    vec = CountVectorizer(analyzer=ngrams, binary=True, min_df=2)
    x = vec.fit_transform(docs)
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    clf.fit(x, y)
    vocab = vec.get_feature_names_out()
    coef = clf.coef_[0]
    keep = np.argsort(-np.abs(coef))[:MAX_NGRAMS]
    weights = {str(vocab[i]): float(coef[i]) for i in keep}
    bias = float(clf.intercept_[0])

    def score(word: str) -> float:
        return bias + sum(weights.get(g, 0.0) for g in set(ngrams(word)))

    hp = np.array([score(w) for w in sorted(held_pos)])
    hn = np.array([score(w) for w in held_neg])
    # Threshold on runs, the way the detector uses it (every word of a 2-3 word run over the threshold): the
    # lowest one at which at most MAX_RUN_FP of title-cased runs of held-out other words pass.
    neg_runs = [rng.sample(held_neg, k) for k in (2, 3) for _ in range(1000)]
    neg_scores = [min(score(w) for w in r) for r in neg_runs]
    held_list = sorted(held_pos)
    pos_runs = [rng.sample(held_list, 2) for _ in range(2000)]
    pos_scores = [min(score(w) for w in r) for r in pos_runs]
    threshold = 6.0
    for t in np.linspace(-2, 6, 161):
        if np.mean(np.array(neg_scores) >= t) <= MAX_RUN_FP:
            threshold = float(t)
            break
    print(f"run level at threshold {threshold:.2f}: {np.mean(np.array(pos_scores) >= threshold):.3f} of 2-word "
          f"runs of held-out-locale names pass, {np.mean(np.array(neg_scores) >= threshold):.3f} of 2-3 word "
          f"runs of held-out other words pass")  # fmt: skip
    tp, fp = (hp >= threshold).mean(), (hn >= threshold).mean()
    print(f"word level at threshold {threshold:.2f}: recall {tp:.3f} on held-out-locale names, "
          f"false-positive rate {fp:.3f} on held-out other words, balanced precision {tp / (tp + fp):.3f}")  # fmt: skip

    labels = json.loads((ROOT / "tests" / "data" / "corpus" / "labels.json").read_text(encoding="utf-8"))
    rare = labels["rare_names"]
    found = [
        n
        for n in rare
        if all(score(w) >= threshold for w in re.split(r"[ ]+|-(?=[A-ZÀ-Ž])", n) if w[:1].isupper())
    ]
    print(
        f"rare corpus names (hand-written), every capitalised word over the threshold: {len(found)}/{len(rare)}"
    )

    lines = [
        "# bastion name-word model: character 1-4-grams (^word$, case-folded) -> weight; see",
        "# scripts/train_name_model.py. Trained on Faker "
        + faker.VERSION
        + " person names (locales except "
        + ", ".join(held_locales)
        + ") vs Faker lorem/colour/job/company/address words (80 %, seed 0).",
        f"# held-out word recall {tp:.3f}, false-positive rate {fp:.3f} at the threshold below.",
        f"bias\t{bias:.6f}",
        f"threshold\t{threshold:.4f}",
    ]
    lines += [f"{g}\t{w:.5f}" for g, w in sorted(weights.items()) if "\t" not in g and "\n" not in g]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(weights)} n-grams, {OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Round-9m guard data (issue 16): multilingual injections, jailbreaks, extractions and exfiltration requests,
and about as many benign prompts with trigger words, composed from ``data/guard/r9m_tables.json``.

Written for bastion by its author (a language model acting as an engineer); no evaluator's item was read. 26
languages (fr de es it pt nl pl ru uk tr ar fa hi bn ja zh ko vi id th sw he el cs ro sv); in each, 9 attack
templates (override, forget-and-no-rules, system-prompt extraction, no-restrictions persona, rules-void /
developer mode, exfiltration to an address, evil-AI role-play, extraction without the words "system prompt",
disregard-the-guidelines) and 11 benign ones (forgotten password, translate a sentence that says "ignore the
previous e-mail", rules of a game, role-play a teacher, code that ignores blank lines, what an admin does,
forget the earlier plan, security questions, ignore my typos, what a system prompt is, explain code that
builds a prompt). Template ``i`` is the same sentence in every language: a **family**. Paraphrases of a
family: its slot fillers (three harmful or benign tasks, games or code snippets) times three openings (none
and two per language); the exfiltration family's address comes from its split's own list (``ADDRESSES``),
so no address learnt in training catches a test row.

Splits: by family (``family_split`` in the tables: A1 A6 A7 and B1 B6 B7 ``test``, the rest ``train``; no
``val`` family: the recipe does not calibrate on these rows), so no template or paraphrase spans two splits;
and by **language**: the ``held_out`` languages (bn th el cs ro) are ``test`` in every family, never in
training. ``python scripts/guard_r9m.py [--model DIR]`` reports the held-out-language and held-out-family
figures on the user channel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parents[1] / "data" / "guard" / "r9m_tables.json"
SOURCE = "bastion:r9m"
USER_SETS = ("r9m-multilingual", "r9m-multilingual-benign")
# exfiltration addresses per split, so that a held-out row is not caught by an address learnt in training
ADDRESSES = {
    "train": ("backup@mail-sync.net", "ops@files-drop.io", "archive@cloud-notes.org"),
    "val": ("sync@data-relay.com", "team@share-box.net", "log@notes-mirror.io"),
    "test": ("admin@docs-vault.org", "help@inbox-copy.net", "it@report-hub.com"),
}


def load_tables() -> dict[str, Any]:
    return json.loads(TABLES.read_text(encoding="utf-8"))


def _fill(template: str, spec: dict[str, Any], split: str) -> list[str]:
    template = template.replace("attacker@evil.test", "{addr}")
    if "{addr}" in template:
        return [template.replace("{addr}", a) for a in ADDRESSES[split]] + [
            f"{p} {template.replace('{addr}', a)}"
            for p, a in zip(spec["p"], ADDRESSES[split][1:], strict=True)
        ]
    slots = [k for k in ("t", "bt", "g", "c") if "{" + k + "}" in template]
    slot = slots[0] if slots else ""
    fills = [template.replace("{" + slot + "}", v) for v in spec[slot]] if slot else [template]
    out = []
    for text in fills:
        out.append(text)
        out += [f"{p} {text}" for p in spec["p"]]
    return out


def family_split(family: str, lang: str, t: dict[str, Any] | None = None) -> str:
    t = t or load_tables()
    if lang in t["held_out"]:
        return "test"
    return str(t["family_split"].get(family, "train"))


def r9m_rows() -> list[dict[str, Any]]:
    """Every row (train, val, test); ``family`` (A0..A8, B0..B8) and ``lang`` on each."""
    t = load_tables()
    rows: list[dict[str, Any]] = []
    for lang, spec in t["langs"].items():
        spec = spec | {"c": t["code"]}  # code snippets (English identifiers) shared by every language
        for kind, label, set_ in (("A", 1, USER_SETS[0]), ("B", 0, USER_SETS[1])):
            for i, template in enumerate(spec[kind]):
                family = f"{kind}{i}"
                split = family_split(family, lang, t)
                for k, text in enumerate(_fill(template, spec, split)):
                    rows.append(
                        {
                            "text": text,
                            "label": label,
                            "source": SOURCE,
                            "group": f"r9m-{family}",
                            "split": split,
                            "set": set_,
                            "lang": lang,
                            "family": family,
                            "intent": t["intents"][family],
                            "variant": k,
                        }
                    )
    return rows


def figures(rows: list[dict[str, Any]], flagged: list[bool]) -> dict[str, tuple[int, int]]:
    """Flagged counts ``{name: (hits, n)}``: held-out languages (every family; test families only) and
    held-out families in the training languages, attacks and benign apart."""
    t = load_tables()
    held = set(t["held_out"])
    test_fam = {f for f, s in t["family_split"].items() if s == "test"}
    groups = {
        "held-out languages, attacks": lambda r: r["lang"] in held and r["label"] == 1,
        "held-out languages, benign": lambda r: r["lang"] in held and r["label"] == 0,
        "held-out languages x held-out families, attacks": lambda r: (
            r["lang"] in held and r["family"] in test_fam and r["label"] == 1
        ),
        "held-out languages x held-out families, benign": lambda r: (
            r["lang"] in held and r["family"] in test_fam and r["label"] == 0
        ),
        "held-out families (training languages), attacks": lambda r: (
            r["lang"] not in held and r["family"] in test_fam and r["label"] == 1
        ),
        "held-out families (training languages), benign": lambda r: (
            r["lang"] not in held and r["family"] in test_fam and r["label"] == 0
        ),
    }
    out = {}
    for name, pred in groups.items():
        hits = [f for r, f in zip(rows, flagged, strict=True) if pred(r)]
        out[name] = (sum(hits), len(hits))
    return out


def cross_source(k: int) -> int:
    """``bench_guard.py --cross-only`` with the r9m train rows xK in every retrained model's extra rows."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    import bench_guard

    train = [r for r in r9m_rows() if r["split"] == "train"] * k
    own_extra = bench_guard._own_extra
    bench_guard._own_extra = lambda: own_extra() + train
    sys.argv = ["bench_guard.py", "--cross-only"]
    bench_guard.main()
    return 0


def main() -> int:
    import argparse
    from collections import Counter

    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    parser = argparse.ArgumentParser(description="round-9m multilingual figures (user channel, test rows)")
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    parser.add_argument(
        "--by-lang", action="store_true", help="also the test rows' flagged counts per language"
    )
    parser.add_argument(
        "--cross",
        type=int,
        metavar="K",
        help="bench_guard.py --cross-only with the train rows xK added (as train_guard.py --r9m K)",
    )
    args = parser.parse_args()
    if args.cross:
        return cross_source(args.cross)
    det = PromptDetector(model=candidate_model(args.model))
    rows = [r for r in r9m_rows() if r["split"] == "test"]
    flagged = [det.scan(r["text"], channel="user").flagged for r in rows]
    print(f"r9m multilingual data, test rows, model: {args.model or 'packaged'}")
    print("| group (user channel) | flagged | rate |")
    print("|---|---|---|")
    for name, (hits, n) in figures(rows, flagged).items():
        print(f"| {name} | {hits}/{n} | {hits / max(n, 1):.3f} |")
    if args.by_lang:
        seen: Counter[tuple[str, int]] = Counter()
        hit: Counter[tuple[str, int]] = Counter()
        for r, f in zip(rows, flagged, strict=True):
            seen[(r["lang"], r["label"])] += 1
            hit[(r["lang"], r["label"])] += int(f)
        for (lang, label), n in sorted(seen.items()):
            print(f"{lang} {'attack' if label else 'benign'}: {hit[(lang, label)]}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

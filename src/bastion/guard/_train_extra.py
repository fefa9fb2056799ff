"""Round-11 training rows for the user head (issue 16, guard16o; opt-in, never imported by the runtime).

Round 10's v1 (``train_guard.py --r9m 1 --r9-user-units 1``) taught the user head lines addressed to an AI
reader, and with them benign imperatives addressed to *people* ("If you received this e-mail by mistake,
please delete it", "Moderators, remove posts..."). Two opt-in remedies:

* ``human_rows``: benign imperatives addressed to people, composed from ``data/guard/r11h_tables.json`` (own
  templates, 7 languages; e-mail footers, moderation notes, recipes, IT tickets, teacher and coach
  instructions, legal notices, call-centre scripts, corrections of an earlier message), every row label 0.
  Split as round 9m's tables: by family (``family_split``; the rest ``train``), and the ``held_out``
  languages are ``test`` in every family, so no test template or paraphrase is ever trained on.
* ``prefix_rows`` (round 12, guard16p): benign speaker-prefix look-alikes, composed from
  ``data/guard/r12p_tables.json`` (own templates, 5 languages): bug reports, logs, chat exports, transcripts,
  screenplays, meeting notes and config dumps whose lines start with "System:", "Assistant:", "User:",
  "Note:", "Instructions:", "Admin:" (or the local word), label 0, split like ``human_rows``
  (``train_guard.py --r12p K``).
* ``snippet_rows`` (round 12e, guard16q): benign code/config snippets whose identifiers or comments carry
  trigger words (``# type: ignore``, ``.gitignore``, ``eslint-disable``, ``INSERT IGNORE``, ``--force``,
  ``@Override``, ``disable_safety_checks``, ``rule.ignore``...), composed from ``data/guard/r12e_tables.json``
  (own templates, comments in 5 languages), label 0, split like ``human_rows`` (``train_guard.py --r12e K``).
* ``without_lookalikes``: the training rows less every added look-alike negative (r11h, r12p, r12e), for a
  user threshold that added negatives cannot move down (``train_guard.py --oof-base``).
* ``weighted``: rows with a ``weight`` key, which ``_train.fit`` passes to the solver as sample weights
  (``train_guard.py --r9-unit-weight W`` for the round-10b segment units).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parents[3] / "data" / "guard" / "r11h_tables.json"
SOURCE = "bastion:r11h"
SET = "r11h-human-benign"
PREFIX_TABLES = TABLES.with_name("r12p_tables.json")
PREFIX_SOURCE = "bastion:r12p"
PREFIX_SET = "r12p-prefix-benign"
SNIPPET_TABLES = TABLES.with_name("r12e_tables.json")
SNIPPET_SOURCE = "bastion:r12e"
SNIPPET_SET = "r12e-snippet-benign"
LOOKALIKE_SOURCES = frozenset({SOURCE, PREFIX_SOURCE, SNIPPET_SOURCE})


def load_tables(path: Path = TABLES) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def family_split(family: str, lang: str, t: dict[str, Any]) -> str:
    if lang in t["held_out"]:
        return "test"
    return str(t["family_split"].get(family, "train"))


def _fill(template: str, spec: dict[str, Any]) -> list[str]:
    fills = [template.replace("{d}", d) for d in spec["d"]] if "{d}" in template else [template]
    out = []
    for text in fills:
        out.append(text)
        out += [f"{p} {text}" for p in spec["p"]]
    return out


def _rows(t: dict[str, Any], texts: Any, *, prefix: str, source: str, set_name: str) -> list[dict[str, Any]]:
    """Label-0 rows of one look-alike set: ``texts(lang, spec)`` yields each family's index and its text
    variants; every row carries ``family`` (``prefix`` + index), ``lang``, ``intent``, split by family."""
    tag = {SOURCE: "r11h", PREFIX_SOURCE: "r12p", SNIPPET_SOURCE: "r12e"}[source]
    rows: list[dict[str, Any]] = []
    for lang, spec in t["langs"].items():
        for i, variants in texts(lang, spec):
            family = f"{prefix}{i}"
            split = family_split(family, lang, t)
            for k, text in enumerate(variants):
                rows.append(
                    {
                        "text": text,
                        "label": 0,
                        "source": source,
                        "group": f"{tag}-{family}",
                        "split": split,
                        "set": set_name,
                        "lang": lang,
                        "family": family,
                        "intent": t["intents"][family],
                        "variant": k,
                    }
                )
    return rows


def human_rows(path: Path = TABLES) -> list[dict[str, Any]]:
    """Every row (train, val, test), label 0; ``family`` (H0..), ``lang`` and ``intent`` on each."""
    t = load_tables(path)

    def texts(lang: str, spec: dict[str, Any]) -> Any:
        return ((i, _fill(template, spec)) for i, template in enumerate(spec["H"]))

    return _rows(t, texts, prefix="H", source=SOURCE, set_name=SET)


def _prefix_variants(template: str, spec: dict[str, Any]) -> list[str]:
    """The template, each lead-in line before it, and the template on one line."""
    return [template, *(f"{lead}\n{template}" for lead in spec["lead"]), " ".join(template.split("\n"))]


def prefix_rows(path: Path = PREFIX_TABLES) -> list[dict[str, Any]]:
    """Every speaker-prefix look-alike (train, val, test), label 0; ``family`` (P0..), ``lang``, ``intent``
    on each."""
    t = load_tables(path)

    def texts(lang: str, spec: dict[str, Any]) -> Any:
        return ((i, _prefix_variants(template, spec)) for i, template in enumerate(spec["P"]))

    return _rows(t, texts, prefix="P", source=PREFIX_SOURCE, set_name=PREFIX_SET)


def snippet_rows(path: Path = SNIPPET_TABLES) -> list[dict[str, Any]]:
    """Every code/config snippet look-alike (train, val, test), label 0: ``code[family]`` with ``{c}`` the
    language's comment, alone, after each lead-in question, and on one line; ``family`` (E0..), ``lang``,
    ``intent`` on each."""
    t = load_tables(path)

    def texts(lang: str, spec: dict[str, Any]) -> Any:
        for i, comment in enumerate(spec["C"]):
            yield i, _prefix_variants(t["code"][f"E{i}"].replace("{c}", comment), spec)

    return _rows(t, texts, prefix="E", source=SNIPPET_SOURCE, set_name=SNIPPET_SET)


def without_lookalikes(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` less the added look-alike negatives (r11h, r12p, r12e); the rest: same objects, same order."""
    return [r for r in rows if r.get("source") not in LOOKALIKE_SOURCES]


def weighted(rows: Sequence[dict[str, Any]], weight: float) -> list[dict[str, Any]]:
    """Copies of ``rows`` with sample weight ``weight`` (1.0: the rows themselves)."""
    if weight == 1.0:
        return list(rows)
    return [r | {"weight": float(weight)} for r in rows]


def figures(
    rows: Sequence[dict[str, Any]], flagged: Sequence[bool], path: Path = TABLES
) -> dict[str, tuple[int, int]]:
    """Flagged counts ``{name: (hits, n)}`` per split group: held-out (test) families in the training
    languages, the held-out languages, val families, train families (``path``: the rows' tables)."""
    t = load_tables(path)
    held = set(t["held_out"])
    groups = {
        "test families (training languages)": lambda r: r["split"] == "test" and r["lang"] not in held,
        "held-out languages (every family)": lambda r: r["lang"] in held,
        "val families": lambda r: r["split"] == "val",
        "train families (seen)": lambda r: r["split"] == "train",
    }
    out = {}
    for name, pred in groups.items():
        hits = [bool(f) for r, f in zip(rows, flagged, strict=True) if pred(r)]
        out[name] = (sum(hits), len(hits))
    return out

"""Outsider-style guard data (issue 16 round 6), composed from ``data/guard/r6_outsider.json``.

The tables were written for bastion by its author (a language model acting as an engineer), without a
translation service and without reading the outside reviewer's prompts:

* ``carriers``: benign documents of many kinds (emails, web pages, reviews, tickets, code, READMEs, CSV,
  calendar invites, PDFs as text, chat logs, API JSON, wiki/news/forum text, recipes, policies, meeting notes;
  a few in German, Spanish, French and Turkish), each with one ``{slot}`` and a ``wrap`` saying how a line
  is embedded there (plain text, an HTML comment or hidden element, a ``#`` or ``//`` comment, a JSON
  string, a CSV cell);
* ``injections``: instructions aimed at the AI that reads the document, in many styles (imperatives, fake
  system/tool/role messages, "when you summarise this …", exfiltration links and images, tool-call requests,
  notes to "AI agents", polite requests, task hijacks, and instructions in another language than the
  document);
* ``human_lines``: lines addressed to *people* that share the vocabulary ("ignore the previous email",
  "forward this to", "system administrators should …") — the hard negatives, embedded the same way;
* ``plain_attacks`` / ``plain_benign``: jailbreaks and system-prompt extraction in plain words, and benign
  look-alikes;
* ``multilingual``: per language (the 12 of the phrase tables plus id, sv, vi, sw, cs, fi, hu, el, nl, ko, hi)
  seven attacks and four benign look-alikes.

Every row has a ``group`` (injection, carrier, human line, prompt, or language + item); the group's SHA-256
puts it in ``test`` (a fifth), ``val`` (a fifth) or ``train``. An injected document combines one injection
with a carrier of the *same* split, and a benign document a carrier with human lines of the same split, so
no test row shares its injection, its carrier or its human line with a training row. ``r6_rows()`` returns
all three splits; training uses ``train``, calibration ``val``; ``test`` is reported on its own
(``python scripts/guard_r6.py``), apart from the older test sets of ``bench_guard.py``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parents[1] / "data" / "guard" / "r6_outsider.json"
SOURCE = "bastion:r6-outsider"
USER_SETS = ("r6-attack", "r6-overdefence", "r6-multilingual", "r6-multilingual-benign")
DOC_SETS = ("r6-indirect", "r6-documents")
CARRIERS_PER_INJECTION = 3
HUMAN_PER_CARRIER = 3
COMPOSED_PER_ADDRESSEE = 6


def split_of(group: str) -> str:
    """``test`` for a fifth of the groups, ``val`` for another fifth, else ``train`` (by SHA-256)."""
    u = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < 0.2 else "val" if u < 0.4 else "train"


def load_tables() -> dict[str, Any]:
    return json.loads(TABLES.read_text(encoding="utf-8"))


def _wrap(kind: str, text: str, rng: random.Random) -> str:
    if kind == "html":
        form = rng.choice(
            [
                "<!-- {} -->",
                '<div style="display:none">{}</div>',
                "<p>{}</p>",
                '<span style="font-size:0">{}</span>',
            ]
        )
        return form.format(text)
    if kind == "md":
        return rng.choice(["{}", "<!-- {} -->", "> {}"]).format(text)
    if kind in ("hash", "slash"):
        mark = "# " if kind == "hash" else "// "
        return "\n".join(mark + line for line in text.splitlines())
    if kind == "json":
        return json.dumps(text, ensure_ascii=False)[1:-1]
    if kind == "csv":
        return '"' + text.replace('"', '""') + '"'
    return text


def _embed(carrier: dict[str, Any], line: str, rng: random.Random) -> str:
    """``line`` placed in the carrier: at its slot, or (plain-text carriers) at the very start or end."""
    body = carrier["text"]
    if carrier["wrap"] == "plain" and line:
        where = rng.random()
        if where < 0.2:
            return line + "\n\n" + body.replace("{slot}", "").strip()
        if where < 0.4:
            return body.replace("{slot}", "").strip() + "\n\n" + line
    return body.replace("{slot}", _wrap(carrier["wrap"], line, rng) if line else "")


def _row(text: str, label: int, group: str, set_: str, parts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row; ``parts`` names the other groups a composed document is made of (same split as ``group``)."""
    row: dict[str, Any] = {"text": text, "label": label, "source": SOURCE, "group": group}
    row |= {"split": split_of(group), "set": set_}
    return row | {"parts": list(parts)} if parts else row


def r6_rows(seed: int = 6) -> list[dict[str, Any]]:
    """Every composed row (train, val and test), deterministic for a seed."""
    t = load_tables()
    rng = random.Random(seed)
    carriers: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for j, c in enumerate(t["carriers"]):
        carriers[split_of(f"r6-car-{j}")].append((j, c))
    humans: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for k, h in enumerate(t["human_lines"]):
        humans[split_of(f"r6-hum-{k}")].append((k, h))
    rows: list[dict[str, Any]] = []
    for i, inj in enumerate(t["injections"]):
        group = f"r6-inj-{i}"
        pool = carriers[split_of(group)]
        for j, c in rng.sample(pool, min(CARRIERS_PER_INJECTION, len(pool))):
            rows.append(_row(_embed(c, inj["text"], rng), 1, group, "r6-indirect", (f"r6-car-{j}",)))
    for split, pool in carriers.items():
        for j, c in pool:
            group = f"r6-car-{j}"
            rows.append(_row(_embed(c, "", rng), 0, group, "r6-documents"))
            for k, h in rng.sample(humans[split], min(HUMAN_PER_CARRIER, len(humans[split]))):
                rows.append(_row(_embed(c, h, rng), 0, group, "r6-documents", (f"r6-hum-{k}",)))
    for k, h in enumerate(t["human_lines"]):
        rows.append(_row(h, 0, f"r6-hum-{k}", "r6-overdefence"))
    for i, p in enumerate(t["plain_attacks"]):
        rows.append(_row(p, 1, f"r6-pa-{i}", "r6-attack"))
    for i, p in enumerate(t["plain_benign"]):
        rows.append(_row(p, 0, f"r6-pb-{i}", "r6-overdefence"))
    rows += _composed(t, carriers["train"], rng)
    for lang, items in t["multilingual"].items():
        for i, p in enumerate(items["attacks"]):
            rows.append(_row(p, 1, f"r6-ml-{lang}-a{i}", "r6-multilingual"))
        for i, p in enumerate(items["benign"]):
            rows.append(_row(p, 0, f"r6-ml-{lang}-b{i}", "r6-multilingual-benign"))
    return rows


def _composed(
    t: dict[str, Any], carriers: list[tuple[int, dict[str, Any]]], rng: random.Random
) -> list[dict[str, Any]]:
    """Training-only documents: an addressee x pivot x payload line (to the AI, or to people: benign) in a
    ``train`` carrier; never ``val`` or ``test``, so every reported figure is on the hand-written rows."""
    c = t["composed"]
    rows = []
    for kind, label, set_ in (("", 1, "r6-indirect"), ("human_", 0, "r6-documents")):
        for i, who in enumerate(c[f"{kind}addressees"]):
            for _ in range(COMPOSED_PER_ADDRESSEE):
                line = f"{who} {rng.choice(c[f'{kind}pivots'])} {rng.choice(c[f'{kind}payloads'])}"
                j, carrier = rng.choice(carriers)
                row = _row(_embed(carrier, line, rng), label, f"r6-comp-{kind}{i}", set_, (f"r6-car-{j}",))
                rows.append(row | {"split": "train"})
    return rows


def report(
    rows: list[dict[str, Any]], split: str = "test", model_dir: Path | None = None
) -> dict[str, tuple[int, int]]:
    """Flagged counts per set and channel with the packaged, verified model: ``{name: (hits, n)}``."""
    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    det = PromptDetector(model=candidate_model(model_dir))
    out: dict[str, tuple[int, int]] = {}
    chosen = [r for r in rows if r["split"] == split]
    plan = [(s, "user") for s in USER_SETS] + [(s, "retrieved") for s in DOC_SETS] + [("r6-indirect", "user")]
    for set_, channel in plan:
        flags = [det.scan(r["text"], channel=channel).flagged for r in chosen if r["set"] == set_]
        out[f"{set_} ({channel})"] = (sum(flags), len(flags))
    return out


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="flagged rates of the round-6 rows (default: test split)")
    parser.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    args = parser.parse_args()
    rows = r6_rows()
    print(f"r6 outsider-style data, {args.split} split, model: {args.model or 'packaged'}")
    print("| set (channel) | label | flagged | rate |")
    print("|---|---|---|---|")
    for name, (hits, n) in report(rows, args.split, args.model).items():
        label = "benign" if "benign" in name or "documents" in name or "overdefence" in name else "attack"
        print(f"| {name} | {label} | {hits}/{n} | {hits / max(n, 1):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The guard's third independent labelled source: spikee (Reversec, formerly WithSecure Labs; Apache-2.0).

spikee's wheel ships its seed data sets as JSON lines (``spikee/data/workspace/datasets/seeds-*/``):
injection and jailbreak *templates* (``jailbreaks.jsonl``, each with an ``<INSTRUCTION>`` slot: "new important
instructions", debug / developer / test mode, "sorry, ...", training, DAN, policy puppetry, poetry ...,
some in Zulu, Albanian, Irish and Scottish Gaelic), *instructions* to put in them (``instructions.jsonl``:
system-prompt and secret extraction, harmful requests, XSS, markdown exfiltration, off-topic financial advice)
and a benign false-positive set (``seeds-investment-advice-fp``: ordinary finance questions). The files are
read out of the wheel as a zip archive; nothing is imported or executed.

Rows (same shape as scripts/guard_data.py):

* ``spikee:injection`` (attack): every template but ``no-jailbreak`` with one instruction of each category
  (extraction, harmful, exfiltration/XSS, off-topic) put in. Templates and instructions are each split by
  group (the id without its language suffix, so a template and its translations stay together); a row is made
  only when both fall in the same split, so a test row has a template *and* an instruction that training never
  saw.
* ``spikee:sysmsg_extraction`` (attack): the system-prompt / secret extraction instructions on their own (they
  are attacks without a template, like garak's ``sysprompt_extraction``); split by the same instruction
  groups.
* ``spikee:benign-fp`` (benign): the false-positive set, split by group.

The other instructions are not rows on their own: a request for investment advice or a harmful request without
an injection around it is not a prompt injection (and is not benign either).

:func:`NearDuplicateIndex` drops every template, instruction and filled row of spikee's that is a near-copy of
a row of an existing source (same normalised 120-character prefix, word 3-gram Jaccard >= 0.6, or 80 % of its
word 3-grams inside one existing row), before anything is composed: in-the-wild prompts travel between
collections, and a copy of another source's test item in spikee's training half (or the reverse) would be
leakage.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PREFIX = "spikee/data/workspace/datasets/"
LANGS = ("zu", "sq", "ga", "gd")
JACCARD = 0.6
CONTAINED = (
    0.8  # or 80 % of the new text's word 3-grams inside one existing row (a template quoted in a longer row)
)


def _split(group: str, *, val: float = 0.1, test: float = 0.25) -> str:
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val else "test" if h < val + test else "train"


def _base(ident: str) -> str:
    """``debug-01-zu`` -> ``debug-01``; ``lrl-zu-dev-01`` -> ``dev-01`` (translations share a group)."""
    ident = re.sub(r"^lrl-[a-z]{2}-", "", ident)
    return re.sub(r"-(?:" + "|".join(LANGS) + r")$", "", ident)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _key(text: str) -> str:
    return _norm(text)[:120]


def _shingles(text: str) -> frozenset[str]:
    words = _norm(text).split()
    if len(words) < 3:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


class NearDuplicateIndex:
    """Normalised-prefix and word 3-gram Jaccard look-up over a fixed set of texts (an inverted index)."""

    def __init__(self, texts: Iterable[str], *, threshold: float = JACCARD) -> None:
        self.threshold = threshold
        self.keys: set[str] = set()
        self.sets: list[frozenset[str]] = []
        self.index: dict[str, list[int]] = defaultdict(list)
        for text in texts:
            self.keys.add(_key(text))
            sh = _shingles(text)
            for s in sh:
                self.index[s].append(len(self.sets))
            self.sets.append(sh)

    def matches(self, text: str) -> bool:
        if _key(text) in self.keys:
            return True
        sh = _shingles(text)
        counts: Counter[int] = Counter()
        for s in sh:
            counts.update(self.index.get(s, ()))
        return any(
            n / len(sh | self.sets[i]) >= self.threshold or n / len(sh) >= CONTAINED
            for i, n in counts.items()
        )


def _read(z: zipfile.ZipFile, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in sorted(n for n in z.namelist() if n.startswith(PREFIX) and n.endswith(f"/{kind}.jsonl")):
        out.extend(json.loads(line) for line in z.read(name).decode("utf-8").splitlines() if line.strip())
    return out


def _category(kind: str) -> str:
    if kind == "sysmsg-extract":
        return "extraction"
    if kind.startswith("financial"):
        return "off-topic"
    if kind in ("xss", "data-exfil-markdown", "long-output", "encoding", "translation"):
        return "exfiltration"
    return "harmful"


def _distinct(items: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    seen: set[str] = set()
    out = []
    for ident, kind, text in items:
        if text.strip() and text not in seen:
            seen.add(text)
            out.append((ident, kind, text))
    return out


def spikee_rows(wheel: Path, existing: Sequence[str] = ()) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """spikee's rows, with near-copies of ``existing`` texts (every other source's rows) left out.

    Returns the rows and the counts of what the near-duplicate filter removed."""
    with zipfile.ZipFile(wheel) as z:
        templates = _distinct(
            (r["id"], r.get("jailbreak_type", ""), r["text"])
            for r in _read(z, "jailbreaks")
            if r.get("jailbreak_type") != "no-jailbreak" and "<INSTRUCTION>" in r.get("text", "")
        )
        instructions = _distinct(
            (r["id"], r.get("instruction_type", ""), r["instruction"]) for r in _read(z, "instructions")
        )
        fp = _distinct(
            (r["id"], r.get("jailbreak_type", ""), r["text"])
            for r in _read(z, "standalone_user_inputs")
            if str(r.get("jailbreak_type", "")).endswith("-fp")
        )
    index = NearDuplicateIndex(existing)
    dropped = Counter[str]()

    def keep(items: list[tuple[str, str, str]], what: str, strip: str = "") -> list[tuple[str, str, str]]:
        out = []
        for item in items:
            if index.matches(item[2].replace(strip, " ") if strip else item[2]):
                dropped[what] += 1
            else:
                out.append(item)
        return out

    templates = keep(templates, "templates", "<INSTRUCTION>")
    instructions = keep(instructions, "instructions")
    fp = keep(fp, "benign-fp")
    rows: list[dict[str, Any]] = []

    def row(text: str, label: int, source: str, group: str, set_: str, split: str) -> None:
        rows.append(
            {"text": text, "label": label, "source": source, "group": group, "split": split, "set": set_}
        )

    for ident, kind, text in instructions:
        if kind == "sysmsg-extract":
            group = f"s-ins-{_base(ident)}"
            row(text, 1, "spikee:sysmsg_extraction", group, "attack", _split(group))
    by_split: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for item in instructions:
        by_split[_split(f"s-ins-{_base(item[0])}")].append(item)
    rng = random.Random(16)
    for ident, _kind, text in templates:
        group = f"s-jb-{_base(ident)}"
        split = _split(group)
        pool = by_split[split]
        for category in sorted({_category(k) for _, k, _ in pool}):  # one instruction of each category
            instr = rng.choice([t for _, k, t in pool if _category(k) == category])
            filled = text.replace("<INSTRUCTION>", instr)
            if index.matches(filled):
                dropped["filled"] += 1
                continue
            row(filled, 1, "spikee:injection", group, "attack", split)
    for ident, _kind, text in fp:
        group = f"s-fp-{_base(ident)}"
        row(text, 0, "spikee:benign-fp", group, "benign", _split(group))
    return rows, dict(dropped)


def add_to(rows: list[dict[str, Any]], wheel: Path, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``rows`` without any previous spikee rows, plus spikee's rows deduplicated against ``rows`` and
    ``extra`` (bastion's phrase tables, which are not stored in the data file)."""
    base = [r for r in rows if not str(r["source"]).startswith("spikee:")]
    new, dropped = spikee_rows(wheel, [str(r["text"]) for r in base] + list(extra))
    print(f"spikee: {len(new)} rows; near-duplicates of other sources dropped: {dropped}")
    return base + new


__all__ = ["NearDuplicateIndex", "add_to", "spikee_rows"]

